"""The main job, timed: `r1lab run configs/tiny.yaml` from scratch in a fresh directory.

Prints the stage timings and the headline findings the run computed (every number comes from the run's own
summary.json), then the RESULT lines: wall-clock minutes of the whole pipeline, the reasoning-RL gain in
held-out pass@1 points over the cold-start checkpoint it started from, and distilled-student minus
RL-only-student pass@1 points.
Needs: the base install only (`make setup`; no extra).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    config = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "configs" / "tiny.yaml")
    with tempfile.TemporaryDirectory(prefix="r1lab-bench-") as tmp:
        run = Path(tmp) / "run"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "r1lab.cli", "run", config, "--out", str(run)], cwd=ROOT, check=True)
        minutes = (time.perf_counter() - t0) / 60
        summary = json.loads((run / "summary.json").read_text())
        results = json.loads((run / "eval" / "results.json").read_text())
        keep = Path(ROOT / "bench_out")
        keep.mkdir(exist_ok=True)
        for name in ("report.md", "summary.json"):
            (keep / f"pipeline_{name}").write_text((run / name).read_text())
    print("\nstage seconds:", json.dumps(summary.get("stage_seconds", {})))
    print(f"{'checkpoint':32s} pass@1   maj@k   mean_len")
    for c in results["checkpoints"]:
        print(f"{c['name']:32s} {100 * c['pass@1']:6.1f}  {100 * (c.get('maj@k') or 0):6.1f}  {c.get('mean_length', 0):8.1f}")
    print(f"mean completion length before / after reasoning RL: {summary.get('mean_length_before_rl')} / "
          f"{summary.get('mean_length_after_rl')}")
    print(f"RESULT pipeline_minutes {minutes:.2f}")
    print(f"RESULT rl_gain_points {summary['rl_gain_points']}")
    print(f"RESULT distill_minus_rl_points {summary['distill_minus_rl_points']}")


if __name__ == "__main__":
    main()
