"""r1lab.host_memory: freed large blocks stay in the process (no page faults on reuse), opt-out respected."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = r"""
import os, sys
from r1lab.host_memory import retain_freed_memory
import torch

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

applied = retain_freed_memory()
x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
before = rss_mb()
del x
after = rss_mb()
print(applied, round(before - after))
"""


def run_child(env_extra: dict[str, str]) -> tuple[str, int]:
    import os

    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True)
    applied, released = out.stdout.split()
    return applied, int(released)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_freed_tensor_memory_stays_resident_and_opt_out_restores_glibc_default():
    applied, released = run_child({"R1LAB_RETAIN_FREED_MEMORY": "1"})
    assert applied == "True" and released < 8          # the 64 MiB block stays in the heap for the next step
    applied, released = run_child({"R1LAB_RETAIN_FREED_MEMORY": "0"})
    assert applied == "False" and released > 56        # glibc's default: the mmap-backed block goes back to the OS
