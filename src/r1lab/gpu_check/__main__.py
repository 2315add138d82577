"""`python -m r1lab.gpu_check [--out DIR] [--parts a,b]` (what `make gpu-check` runs after the offline install)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from r1lab.gpu_check.parts import PARTS
from r1lab.gpu_check.runner import environment, run_check, select_parts

ROOT = Path(__file__).resolve().parents[3]  # the checkout: parts run tests/ and benchmarks/ from here


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpu-check", description=__doc__)
    ap.add_argument("--out", default=os.environ.get("GPU_CHECK_OUT", "gpu_check"), help="report directory")
    ap.add_argument("--parts", default=os.environ.get("PARTS") or None,
                    help=f"comma-separated subset of: {', '.join(p.name for p in PARTS)}")
    args = ap.parse_args(argv)
    parts = select_parts(PARTS, args.parts)
    env = environment()
    print(f"[gpu-check] torch {env['torch']}, CUDA {env['cuda']}, GPU {env['gpu']}")
    return run_check(parts, cuda=env["gpu"] != "none", out_dir=Path(args.out).resolve(), cwd=ROOT, header=env)


if __name__ == "__main__":
    sys.exit(main())
