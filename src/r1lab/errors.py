"""User-facing errors: the CLI prints them as one line (no traceback) and exits non-zero.

Raise these for anything a user can fix (a bad config key, a missing file, a checkpoint that does not
match the model); let programming errors surface as ordinary exceptions.
"""

from __future__ import annotations

import errno


class R1labError(Exception):
    """An error caused by the user's input; its message is one self-contained line."""


class ConfigError(R1labError):
    """A config file or override is missing, malformed or names an unknown key."""


class CheckpointError(R1labError):
    """A checkpoint directory does not match what is being loaded (keys, shapes, dtypes)."""


class DataError(R1labError):
    """A dataset file or record is malformed."""


class DiskFull(R1labError):
    """A write failed because the device is full; nothing was left half-written (temp + rename)."""


class Interrupted(R1labError):
    """The user pressed Ctrl-C (SIGINT) inside a stage; the message says where, and the CLI exits 130 as shells
    expect. Not a KeyboardInterrupt subclass: the CLI framework would turn that into a bare exit code."""

    exit_code = 130


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC / EDQUOT from Python's own I/O, or the same OS error wrapped in a library's message (safetensors'
    `SafetensorError: ... No space left on device (os error 28)`, matplotlib, tensorboard)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text
