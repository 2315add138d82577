"""Keep freed host memory inside the process instead of handing it back to the OS (glibc malloc settings).

glibc serves large allocations (above 128 KiB, a threshold that adapts up to 32 MiB) with fresh mmap pages
and unmaps them on free, and it trims the heap top past a similar threshold; the next tensor of that size
then page-faults on the first touch of every 4 KiB page. A CPU training step allocates and frees the same
large tensors every step (gradients, autocast's bf16 weight copies, [tokens, vocab] logits), so part of each
step went to page faults: zero-filling SmolLM2's 113 MB embedding gradient took 245 ms, and a 3.5 MB
gradient 7.6 ms (0.46 GB/s). Serving every allocation from the heap and never trimming it lets each step
reuse the previous step's warm pages. The price: the process keeps its peak footprint until exit.
Opt out with R1LAB_RETAIN_FREED_MEMORY=0.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Apply once per process; True when glibc accepted the settings (False elsewhere or when opted out)."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("R1LAB_RETAIN_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # no mmap-backed chunks: large blocks come from the heap; and never trim the heap's free top
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
