"""Where r1lab keeps files it derives once and reuses (converted checkpoints)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$R1LAB_CACHE` if set, else `~/.cache/r1lab`; created on first use by whoever writes into it."""
    env = os.environ.get("R1LAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "r1lab"
