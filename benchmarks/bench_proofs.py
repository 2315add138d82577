"""Formal proofs: `r1lab run configs/proofs.yaml` from scratch, then the same R1-Zero stage with the process reward.

1. The full recipe on the proof task (docs/PROOFS.md), timed. From its evaluation: the held-out complete-proof
   rate gained by R1-Zero over the base, the R1 checkpoint's rate, and its rate on depth-3 problems (one deeper
   than any training problem).
2. R1-Zero again from the same base, with `proof_steps` (share of lines verified before the first failure) as
   its reward instead of the outcome alone, evaluated the same way: R1-Zero(proof_steps) − R1-Zero(outcome).
3. The checker's throughput on the held-out problems' proofs (in-process, and through the rewards' killable
   verifier process as RL pays it), so the reward's cost can be set beside rollout cost.
Needs: the `proofs` extra (z3-solver; `make setup` installs it with the dev extra).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "proofs.yaml"
DEPTH_TASK = "proof?depth=3&distractors=0&instruction=false"  # one deeper than configs/proofs.yaml trains on


def pass1(results: dict, stage: str) -> float:
    return next(c for c in results["checkpoints"] if c["stage"] == stage)["pass@1"]


def process_reward_r1_zero(run: Path) -> float:
    """pass@1 of R1-Zero trained from the run's base with `proof_steps` as its reward (format as before)."""
    from r1lab.config import load_config
    from r1lab.eval import evaluate
    from r1lab.recipe import RecipeConfig
    from r1lab.recipe.stages import linked
    from r1lab.train.rl import rl

    cfg = load_config(RecipeConfig, CONFIG, [])
    rewards = [{"name": "proof_steps"}, {"name": "format", "weight": 0.2}, {"name": "accuracy", "weight": 0.0}]
    section = linked(cfg.r1_zero, rewards=rewards, model__init_from=str(run / "base" / "checkpoint"),
                     train__out_dir=str(run / "r1_zero_steps"), train__seed=cfg.seed, train__progress=False,
                     data__task=cfg.task.spec, data__split="train", data__seed=cfg.task.seed,
                     data__template=cfg.task.template)
    result = rl(section)
    e = cfg.eval
    res = evaluate(result.checkpoint, cfg.task.spec, n=e.n, temperature=e.temperature, top_p=e.top_p,
                   max_new_tokens=e.max_new_tokens, template=cfg.task.template, split="test", size=e.size,
                   seed=cfg.task.seed, name="R1-Zero (proof_steps)")
    return res["overall"]["pass@1"]


def checks_per_second(size: int = 300) -> tuple[float, float]:
    """(in-process, through the verifier process) proof checks per second on held-out worked proofs."""
    from r1lab.data import load_task
    from r1lab.data.tasks import get_task
    from r1lab.logic import check_proof
    from r1lab.rewards import get_reward

    task = get_task("proof?depth=1-3&distractors=0&instruction=false")
    records = load_task(task.name, "test", size)
    proofs = [task.answer_text(r) for r in records]
    t0 = time.perf_counter()
    assert all(check_proof(r["metadata"]["premises"], r["metadata"]["goal"], p).complete for r, p in zip(records, proofs))
    local = size / (time.perf_counter() - t0)
    reward = get_reward("proof")
    reward(["<answer>\n1. a == 1\n</answer>"], metadata=[records[0]["metadata"]])  # start the worker untimed
    t0 = time.perf_counter()
    scores = reward([f"<answer>\n{p}\n</answer>" for p in proofs], metadata=[r["metadata"] for r in records])
    remote = size / (time.perf_counter() - t0)
    assert scores == [1.0] * size
    return local, remote


def main() -> None:
    local, remote = checks_per_second()
    with tempfile.TemporaryDirectory(prefix="r1lab-bench-proofs-") as tmp:
        run = Path(tmp) / "run"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "r1lab.cli", "run", str(CONFIG), "--out", str(run)], cwd=ROOT, check=True)
        minutes = (time.perf_counter() - t0) / 60
        results = json.loads((run / "eval" / "results.json").read_text())
        steps_rate = process_reward_r1_zero(run)
        keep = ROOT / "bench_out"
        keep.mkdir(exist_ok=True)
        (keep / "proofs_report.md").write_text((run / "report.md").read_text())
    print(f"\n{'checkpoint':32s} proof rate  by depth                 depth 3")
    for c in results["checkpoints"]:
        groups = " ".join(f"{g}:{100 * v:5.1f}" for g, v in c.get("groups", {}).items())
        print(f"{c['name']:32s} {100 * c['pass@1']:6.1f}      {groups:24s} {100 * c['extra'][DEPTH_TASK]:5.1f}")
    r1_zero = pass1(results, "r1_zero")
    print(f"R1-Zero with the outcome reward {100 * r1_zero:.1f}, with proof_steps {100 * steps_rate:.1f}")
    print(f"proof checks per second: {local:.1f} in-process, {remote:.1f} through the verifier process")
    r1 = next(c for c in results["checkpoints"] if c["stage"] == "r1")
    print(f"RESULT proof_pipeline_minutes {minutes:.2f}")
    print(f"RESULT proof_rl_gain_points {100 * (r1_zero - pass1(results, 'base')):.2f}")
    print(f"RESULT proof_final_rate {r1['pass@1']:.4f}")
    print(f"RESULT proof_depth_generalisation {r1['extra'][DEPTH_TASK]:.4f}")
    print(f"RESULT proof_steps_vs_outcome_points {100 * (steps_rate - r1_zero):.2f}")
    print(f"RESULT proof_checks_per_second {remote:.1f}")


if __name__ == "__main__":
    main()
