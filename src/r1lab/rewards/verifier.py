"""A persistent, killable verifier process: time-bounded math-verify from any thread.

math-verify's own time-out uses ``signal.alarm``, which only works in the main thread and cannot interrupt
sympy while it is inside C code (``10^{10^{10}}`` hangs forever). So verification runs in a child process
(`r1lab.rewards._verify_worker`) that the parent waits on with a deadline; a request that overruns gets the
child killed (its whole process group) and a fresh one started on the next request. Callers see `None`
for "no verdict in time", never an exception and never a hang.

One child per parent process, shared by all threads through a lock; after a ``fork`` the child notices the
pid changed and starts its own worker instead of sharing pipes.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

STARTUP_TIMEOUT_S = 60.0  # importing sympy on a busy machine; not charged to any request
KILL_GRACE_S = 1.0  # the child's own timer fires at timeout_s; the parent kills it this much later


class VerifierProcess:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._owner_pid = os.getpid()
        self._buffer = b""
        self.kills = 0  # workers killed after a time-out or a garbled reply

    # -- lifecycle ---------------------------------------------------------------------------------------
    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "r1lab.rewards._verify_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._buffer = b""
        ready = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        if ready is None:
            self._kill()
            raise RuntimeError("math verifier process did not start (could not import math_verify?)")

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # before reaping: the pid cannot have been reused yet
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        proc.wait()

    def close(self) -> None:
        with self._lock:
            if self._owner_pid == os.getpid():
                self._kill()

    # -- I/O -----------------------------------------------------------------------------------------------
    def _read_line(self, deadline: float) -> bytes | None:
        """One reply line, or None if the deadline passes or the child dies first."""
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def request(self, payload: dict, timeout_s: float) -> dict | None:
        """Send one request; its reply, or None after a time-out or crash (the child is then replaced)."""
        with self._lock:
            if self._owner_pid != os.getpid():  # forked: the pipes belong to the parent's worker
                self._proc, self._owner_pid, self._buffer = None, os.getpid(), b""
            if self._proc is None or self._proc.poll() is not None:
                self._kill()
                self._start()
            payload = dict(payload, timeout_s=timeout_s)
            try:
                self._proc.stdin.write(json.dumps(payload).encode() + b"\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self._kill()
                return None
            line = self._read_line(time.monotonic() + timeout_s + KILL_GRACE_S)
            try:
                return json.loads(line) if line is not None else None
            except ValueError:
                pass
            self._kill()
            self.kills += 1
            return None


_shared: VerifierProcess | None = None
_shared_lock = threading.Lock()


def shared_verifier() -> VerifierProcess:
    """The process-wide verifier (started lazily on first use, stopped at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = VerifierProcess()
            atexit.register(_shared.close)
        return _shared
