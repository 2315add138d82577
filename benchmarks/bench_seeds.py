"""The default recipe on five seeds: do its findings hold on every one?

1. `r1lab sweep configs/tiny.yaml seed=0,1,2,3,4`: every figure below is the WORST seed's (a finding counts only
   when it holds on all of them), next to mean ± std.
2. `r1lab sweep configs/tiny.yaml r1_zero.preset=r1,dr_grpo seed=0,1,2` with only the stages R1-Zero needs: the
   growth of wrong-answer length over R1-Zero's steps (last 10% over first 10%) under R1's per-sequence mean minus
   under Dr. GRPO's constant normaliser (mean over the seeds), the length bias Dr. GRPO removes.
Both sweeps resume when run again (their directories are kept under bench_out/); `--jobs` stays 1 on 2 cores.
Needs: the base install only (`make setup`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench_out"
SEEDS = "0,1,2,3,4"
WORST = {  # figure -> whether lower is worse (min) or higher is worse (max)
    "stage_drop_points": max, "rl_gain_points": min, "r1_zero_gain_points": min, "r1_final_minus_base_points": min,
    "distill_minus_rl_points": min, "r1_zero_length_growth": min, "effective_correction_growth": min,
    "adaptive_thinking_gain": min,
}


def sweep(*args: str) -> Path:
    out = OUT / ("seeds" if len(args) == 1 else "length_bias")
    subprocess.run([sys.executable, "-m", "r1lab.cli", "sweep", str(ROOT / "configs" / "tiny.yaml"), *args,
                    "--out", str(out)], cwd=ROOT, check=True)
    return out


def runs(sweep_dir: Path) -> list[tuple[list[str], Path]]:
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    return [(p["overrides"], sweep_dir / p["name"]) for p in manifest["points"]]


def wrong_length_growth(run: Path) -> float | None:
    from r1lab.recipe.stages import window_means
    from r1lab.report import read_jsonl

    means = window_means(read_jsonl(run / "r1_zero" / "metrics.jsonl"), "completions/mean_length_wrong")
    return means[1] / means[0] - 1 if means and means[0] > 0 else None


def main() -> None:
    seeds_dir = sweep(f"seed={SEEDS}")
    summaries = [json.loads((run / "summary.json").read_text()) for _, run in runs(seeds_dir)]
    minutes = [sum(s["stage_seconds"].values()) / 60 for s in summaries]
    student = []
    for _, run in runs(seeds_dir):
        rows = json.loads((run / "eval" / "results.json").read_text())["checkpoints"]
        student.append(100 * next(c["pass@1"] for c in rows if c["stage"] == "student_distill"))
    print(f"\n{'figure':32s} {'worst':>9s} {'mean ± std':>18s}  per seed")
    worst: dict[str, float | None] = {}
    for key, pick in WORST.items():
        values = [s.get(key) for s in summaries]
        known = [v for v in values if isinstance(v, (int, float))]
        worst[key] = pick(known) if len(known) == len(values) else None  # unmeasurable on a seed: no finding
        spread = f"{statistics.fmean(known):.2f} ± {statistics.stdev(known):.2f}" if len(known) > 1 else "–"
        print(f"{key:32s} {str(worst[key]):>9s} {spread:>18s}  {values}")
    bias_dir = sweep("r1_zero.preset=r1,dr_grpo", "seed=0,1,2", "--set", "stages=[data,base,r1_zero,eval]")
    growth: dict[str, list[float]] = {}
    for overrides, run in runs(bias_dir):
        preset = next(o.split("=", 1)[1] for o in overrides if o.startswith("r1_zero.preset="))
        g = wrong_length_growth(run)
        if g is not None:
            growth.setdefault(preset, []).append(g)
    print(f"wrong-answer length growth under R1-Zero: {growth}")
    print(f"RESULT pipeline_minutes {max(minutes):.2f}")
    for key in WORST:
        print(f"RESULT {key} {worst[key]}")
    print(f"RESULT student_distilled_pass1_worst {min(student):.2f}")
    if growth.get("r1") and growth.get("dr_grpo"):
        print(f"RESULT length_bias_wrong_r1_minus_drgrpo "
              f"{statistics.fmean(growth['r1']) - statistics.fmean(growth['dr_grpo']):.4f}")
    else:
        print("RESULT length_bias_wrong_r1_minus_drgrpo None")


if __name__ == "__main__":
    main()
