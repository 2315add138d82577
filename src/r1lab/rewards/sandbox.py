"""Run model-written Python in a locked-down subprocess and bound everything it can consume.

Parent side (this module): a fresh temporary directory per run (the child's cwd, HOME and TMPDIR, removed
afterwards), a scrubbed environment (nothing of ours — tokens, keys, paths — is inherited), the child in
its own session/process group, a wall-clock deadline, capped stdout/stderr, and the WHOLE process group
SIGKILLed at the end whatever happened. Child side (`_sandbox_child`): network namespace, privilege drop
when root, rlimits (CPU, memory, file size, open files, no new processes), and an audit hook; each result
reports which of those were in force (`SandboxResult.isolation`).

Honest limits: without root or user namespaces there is no network namespace and no privilege drop; then
network and file-system protection rests on the audit hook, which determined native code could bypass
(ctypes and subprocess creation are refused, and RLIMIT_NPROC stops forks, which narrows that a lot).
No seccomp filter is installed. Use a container or VM for code you must not trust at all.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHILD = Path(__file__).with_name("_sandbox_child.py")


@dataclass(frozen=True)
class SandboxLimits:
    cpu_s: float = 2.0  # RLIMIT_CPU (rounded up to whole seconds)
    wall_s: float = 5.0  # wall-clock deadline, then the process group is killed
    memory_bytes: int = 512 * 2**20  # RLIMIT_AS
    file_bytes: int = 4 * 2**20  # RLIMIT_FSIZE: the largest file the code may write
    open_files: int = 64  # RLIMIT_NOFILE
    max_output_bytes: int = 1 * 2**20  # stdout beyond this: killed, output_truncated
    max_stderr_bytes: int = 64 * 2**10


@dataclass
class SandboxResult:
    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool = False  # wall deadline or CPU limit
    output_truncated: bool = False
    wall_s: float = 0.0
    isolation: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_truncated


def scrubbed_env(workdir: str) -> dict[str, str]:
    """The child's entire environment: nothing from ours."""
    return {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def _remove_tree(path: str) -> None:
    def make_writable_and_retry(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable_and_retry)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # before reaping, so the group id cannot have been reused
    except (ProcessLookupError, PermissionError):
        pass


def run_python(code: str, stdin: str = "", limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `code` as a script with `stdin` as its standard input, inside the sandbox; never raises on `code`."""
    workdir = tempfile.mkdtemp(prefix="r1lab-sandbox-")
    status_r, status_w = os.pipe()
    try:
        Path(workdir, "solution.py").write_text(code, encoding="utf-8", errors="replace")
        Path(workdir, "stdin.txt").write_text(stdin, encoding="utf-8", errors="replace")
        cfg = {
            "workdir": workdir, "status_fd": status_w, "parent_pid": os.getpid(), "cpu_s": limits.cpu_s, "memory_bytes": limits.memory_bytes,
            "file_bytes": limits.file_bytes, "open_files": limits.open_files,
        }
        start = time.monotonic()
        with open(os.path.join(workdir, "stdin.txt"), "rb") as stdin_file:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(CHILD), json.dumps(cfg)],
                stdin=stdin_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir,
                env=scrubbed_env(workdir), start_new_session=True, pass_fds=(status_w,),
            )
        os.close(status_w)
        status_w = -1
        result = _collect(proc, limits, start)
        result.isolation = _read_status(status_r)
        return result
    finally:
        if status_w >= 0:
            os.close(status_w)
        os.close(status_r)
        _remove_tree(workdir)


def _collect(proc: subprocess.Popen, limits: SandboxLimits, start: float) -> SandboxResult:
    """Read stdout/stderr under caps until exit or deadline; always kill the process group."""
    out, err = bytearray(), bytearray()
    caps = {proc.stdout: (out, limits.max_output_bytes), proc.stderr: (err, limits.max_stderr_bytes)}
    truncated = timed_out = False
    deadline = start + limits.wall_s
    with selectors.DefaultSelector() as sel:
        for stream in caps:
            sel.register(stream, selectors.EVENT_READ)
        while sel.get_map() and not truncated:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf, cap = caps[key.fileobj]
                room = cap - len(buf)
                buf += chunk[: max(0, room)]
                if len(chunk) > room and key.fileobj is proc.stdout:
                    truncated = True  # stderr past its cap is dropped; stdout past its cap ends the run
    if not timed_out and not truncated:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    _kill_group(proc)
    proc.stdout.close()
    proc.stderr.close()
    returncode = proc.wait()
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL) and not truncated:
        timed_out = True  # CPU limit: SIGXCPU at the soft limit, SIGKILL at the hard one (or our own kill)
    return SandboxResult(
        stdout=out.decode("utf-8", errors="replace"), stderr=err.decode("utf-8", errors="replace"),
        returncode=returncode, timed_out=timed_out, output_truncated=truncated, wall_s=time.monotonic() - start,
    )


def _read_status(fd: int) -> dict:
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, 4096)
        return json.loads(data) if data else {}
    except (BlockingIOError, ValueError):
        return {}
