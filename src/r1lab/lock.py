"""One writer per run directory: an advisory lock file that a dead holder cannot keep locked.

`fcntl.flock` locks belong to the open file, so the kernel releases them when the holder exits, however it
exits (SIGKILL included); the PID written inside is only there to name the holder in the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from r1lab.errors import R1labError

LOCK_NAME = ".r1lab.lock"


class DirectoryInUse(R1labError):
    """Another live process holds the directory's lock."""


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold `directory`'s lock for the block; raise DirectoryInUse at once if another process holds it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise DirectoryInUse(f"{directory} is in use by another r1lab run (PID {holder}); wait for it to "
                                 f"end or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
