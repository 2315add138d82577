"""The `pipeline` part: the whole tiny recipe (configs/tiny.yaml) on the machine's device, timed, with its
headline figures (`python -m r1lab.gpu_check.pipeline OUT_DIR`)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from r1lab.recipe import run_recipe

ROOT = Path(__file__).resolve().parents[3]


def main(out: str) -> int:
    t0 = time.perf_counter()
    run = run_recipe(ROOT / "configs" / "tiny.yaml", Path(out) / "run", log=print)
    minutes = (time.perf_counter() - t0) / 60
    summary = json.loads((run / "summary.json").read_text())
    print(f"RESULT tiny_pipeline_gpu_minutes {minutes:.2f}")
    for key in ("rl_gain_points", "r1_zero_gain_points", "distill_minus_rl_points"):
        if isinstance(summary.get(key), (int, float)):
            print(f"RESULT tiny_pipeline_{key} {summary[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
