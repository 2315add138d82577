"""SmolLM2-135M-Instruct recipe constants and the reward shared by its config, benchmark and tests.

Measured on this machine (SmolLM2-135M-Instruct, chat template with `<think>\\n` prefilled, 24 held-out
problems x 4 samples, 48 new tokens): the model never writes `<answer>` tags on its own (strict pass@1 0%), but
states the result in prose ("9 - 1 is 8"), so the R1-Zero-style run grades the *last number* of a completion
(`answer_is`, then `last_number` fallbacks of the shared extractor) and teaches the format with the partial
credit of `format_soft` (0.25 per R1 tag used exactly once). Base pass@1 with that extractor on TASK: 17%
at temperature 1.0, 20% at 0.7.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Sequence

from r1lab.atomic import atomic_write_json, atomic_write_jsonl
from r1lab.data import get_template, load_task
from r1lab.data.tokenizer import train_tokenizer
from r1lab.engine import SamplingParams, make_sampler
from r1lab.errors import ConfigError
from r1lab.eval import evaluate
from r1lab.model import ModelConfig, Transformer
from r1lab.rewards import get_reward
from r1lab.seeds import derive_seed
from r1lab.sources import load_model
from r1lab.train.core.model_spec import build_model
from r1lab.train.rl import RLConfig, rl
from r1lab.train.stages.distill import DistillConfig, distill

# Single-digit addition/subtraction of two terms: the one reasoning-gym setting where the model is right
# often enough (10-50%) for group-relative advantages to carry signal from the first step.
TASK = ('rg:basic_arithmetic?min_terms=2&max_terms=2&max_digits=1&operators=["+","-"]'
        '&allow_parentheses=false&allow_negation=false')
SOURCE = "smollm2-135m"
ANSWER_FALLBACKS = ("answer_is", "last_number")
ACCURACY_WEIGHT, FORMAT_WEIGHT = 1.0, 0.25
THINK_PREFILL = "<think>\n"


def reward_specs() -> list[dict[str, Any]]:
    """The `rewards:` list of configs/smollm2_grpo.yaml (RLConfig RewardSpec dicts)."""
    return [{"name": "accuracy", "weight": ACCURACY_WEIGHT, "params": {"fallbacks": list(ANSWER_FALLBACKS)}},
            {"name": "format_soft", "weight": FORMAT_WEIGHT}]


class SmolReward:
    """accuracy (last-number fallbacks) + 0.25 x format_soft as ONE plain function, callable by r1lab's RL stage
    (columns `answer`, `task`, `metadata`) and by TRL's GRPOTrainer (dataset columns `answer`, `task`,
    `metadata_json`), so both trainers optimise exactly the same reward."""

    __name__ = "smol_reward"

    def __init__(self, prefill: str = THINK_PREFILL):
        self.prefill = prefill
        self.accuracy = get_reward("accuracy", fallbacks=ANSWER_FALLBACKS)
        self.format = get_reward("format_soft")

    def __call__(self, completions: Sequence[Any], answer: Sequence[str], task: Sequence[str] | None = None,
                 metadata: Sequence[dict] | None = None, metadata_json: Sequence[str] | None = None,
                 **_: Any) -> list[float]:
        n = len(completions)
        if metadata is None and metadata_json is not None:
            metadata = [json.loads(m) for m in metadata_json]
        cols = {"answer": list(answer), "task": list(task or [None] * n), "metadata": list(metadata or [None] * n),
                "prefill": [self.prefill] * n}
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        acc = self.accuracy(texts, **cols)
        fmt = self.format(texts, **cols)
        return [ACCURACY_WEIGHT * (a or 0.0) + FORMAT_WEIGHT * (f or 0.0) for a, f in zip(acc, fmt)]


# ---- GRPO with a held-out pass@1 curve ------------------------------------------------------------------------
EVAL_SETTINGS = {"n": 8, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 48, "split": "test", "size": 37,
                 "seed": 0, "stop": [], "fallbacks": list(ANSWER_FALLBACKS)}  # all 37 held-out problems


def held_out_pass1(model: Any, tokenizer: Any, task: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """pass@1 (mean over n samples per problem) on the task's test split, graded like the RL reward."""

    s = {**EVAL_SETTINGS, **(settings or {})}
    result = evaluate(model, task, tokenizer=tokenizer, template=get_template("chat"), **s)
    o = result["overall"]
    return {"pass@1": o["pass@1"], "pass@1_ci": o["pass@1_ci"], "format_rate": o["format_rate"],
            "mean_length": o["mean_length"], "problems": o["problems"], "n": o["n"], "seconds": result["seconds"]}


def rl_with_curve(cfg: Any, every: int, *, eval_settings: dict[str, Any] | None = None,
                  log: Any = print) -> list[dict[str, Any]]:
    """Run the RL stage of `cfg` in chunks of `every` optimizer steps (resuming its own checkpoint, so the run is
    the same as one uninterrupted `r1lab rl`; constant LR schedules only) and measure held-out pass@1 before the
    first step and after each chunk. Returns the curve; also written to `<out_dir>/curve.json`."""



    if cfg.train.schedule != "constant":  # the loop's decay depends on max_steps, which each chunk changes
        raise ConfigError(f"rl_with_curve: train.schedule must be 'constant', got {cfg.train.schedule!r}")
    total = cfg.train.max_steps or cfg.num_rollouts * cfg.objective_config.mu * cfg.mini_batches
    model, tokenizer = build_model(cfg.model)
    records = load_task(cfg.data.task, cfg.data.split, cfg.data.size, cfg.data.seed)
    out = Path(cfg.train.out_dir)
    curve: list[dict[str, Any]] = []
    train_seconds = 0.0  # sum of optimizer-step wall times (rollouts included; evaluations and checkpoints not)

    def point(step: int, train_metrics: dict[str, Any]) -> None:
        model.eval()
        ev = held_out_pass1(model, tokenizer, cfg.data.task, eval_settings)
        curve.append({"step": step, "train_seconds": round(train_seconds, 1),
                      **{k: train_metrics.get(k) for k in ("reward", "loss")}, "eval": ev})
        atomic_write_json(out / "curve.json", curve)
        log(f"step {step}: held-out pass@1 {100 * ev['pass@1']:.1f}% (95% CI {100 * ev['pass@1_ci'][0]:.1f}-"
            f"{100 * ev['pass@1_ci'][1]:.1f}), format {100 * ev['format_rate']:.1f}%, train reward "
            f"{train_metrics.get('reward')}")

    out.mkdir(parents=True, exist_ok=True)
    point(0, {})
    for stop in range(every, total + every, every):
        stop = min(stop, total)
        chunk = cfg.model_copy(deep=True)
        chunk.train.max_steps, chunk.train.resume = stop, stop > every  # the first chunk starts afresh
        res = rl(chunk, model=model, tokenizer=tokenizer, records=records)
        train_seconds += sum(h.get("step_time_s", 0.0) for h in res.history)
        rewards = [h.get("reward") for h in res.history if h.get("reward") is not None]
        point(stop, {"reward": sum(rewards) / len(rewards) if rewards else None, "loss": res.metrics.get("loss")})
        if stop == total:
            break
    return curve


# ---- cross-family distillation: SmolLM2 (after GRPO) -> a tiny r1lab student, vs the student trained by RL --------
def verified_traces(teacher: Any, tokenizer: Any, records: Sequence[dict], *, n: int = 8, temperature: float = 0.7,
                    max_new_tokens: int = 48, prompts_per_batch: int = 8, seed: int = 0,
                    sampler: Any = None) -> tuple[list[dict], dict]:
    """Rejection sampling from the teacher, accepted by the RL reward's own accuracy check (last-number
    extraction), completed (stopped, not truncated) and exactly deduplicated. Returns (traces, counts).

    `r1lab.sampling.rejection` accepts only answers its default (strict) extractor finds, which SmolLM2's prose never
    contains, so the recipe applies the same filters with the recipe's extractor."""

    template, reward = get_template("chat"), SmolReward()
    sampler = sampler or make_sampler(teacher, tokenizer)
    traces, seen = [], set()
    counts = {"prompts": len(records), "sampled": 0, "truncated": 0, "incorrect": 0, "duplicate": 0}
    for b, start in enumerate(range(0, len(records), prompts_per_batch)):
        batch = list(records[start:start + prompts_per_batch])
        prompts = [template.render(r["prompt"], tokenizer) for r in batch]
        params = SamplingParams(n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=derive_seed(seed, b))
        for rec, comps in zip(batch, sampler.generate(prompts, params)):
            k = len(comps)
            acc = reward.accuracy([c.text for c in comps], answer=[rec["answer"]] * k, task=[rec.get("task")] * k,
                                  metadata=[rec.get("metadata")] * k, prefill=[template.prefill] * k)
            for c, a in zip(comps, acc):
                counts["sampled"] += 1
                reason = "truncated" if c.finish_reason != "stop" else "incorrect" if (a or 0.0) < 1.0 else None
                key = (rec["prompt"], c.text.strip())
                if reason is None and key in seen:
                    reason = "duplicate"
                if reason is not None:
                    counts[reason] += 1
                    continue
                seen.add(key)
                traces.append({"id": rec.get("id"), "problem": rec["prompt"], "completion": c.text.strip(),
                               "answer": rec["answer"], "task": rec.get("task")})
    counts["kept"] = len(traces)
    return traces, counts


def student_tokenizer(texts: Sequence[str], vocab_size: int = 512) -> Any:
    """The student's own byte-level BPE (r1lab's tiny-model tokenizer) trained on the traces and task text:
    SmolLM2's 49k vocabulary would make the student's embedding and head most of its parameters."""

    return train_tokenizer(list(texts), vocab_size=vocab_size)


def new_student(tokenizer: Any, seed: int = 0, **overrides: Any) -> Any:
    """A fresh r1lab `tiny` DeepSeek-V3-style student sized to the tokenizer (no MTP head: plain next-token)."""
    import torch  # CLI start-up time


    torch.manual_seed(seed)
    cfg = ModelConfig.from_preset("tiny", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                  mtp_depth=0, **overrides)
    return Transformer(cfg)


STUDENT_EVAL = {"n": 8, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 48, "split": "test", "size": 37,
                "seed": 0, "stop": [], "fallbacks": list(ANSWER_FALLBACKS)}


def student_pass1(model: Any, tokenizer: Any, task: str) -> dict[str, Any]:
    model.eval()
    o = evaluate(model, task, tokenizer=tokenizer, template=get_template("plain"), **STUDENT_EVAL)["overall"]
    return {"pass@1": o["pass@1"], "pass@1_ci": o["pass@1_ci"], "format_rate": o["format_rate"],
            "mean_length": o["mean_length"]}


def distill_vs_rl(teacher_dir: str, out_dir: str, *, task: str = TASK, n: int = 8, sft_steps: int = 300,
                  rl_steps: int = 150, train_size: int = 175, log: Any = print) -> dict[str, Any]:
    """Verified SmolLM2 traces -> SFT of a fresh tiny r1lab student, against the same student (same weights, same
    tokenizer) trained by GRPO alone on the same prompts and reward; both graded on the held-out split like the
    teacher. Writes `<out_dir>/distill_vs_rl.json` and returns it."""


    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = load_task(task, "train", train_size, 0)
    t0 = time.perf_counter()
    teacher, teacher_tok = load_model(teacher_dir)
    traces, counts = verified_traces(teacher, teacher_tok, records, n=n)
    sample_s = time.perf_counter() - t0
    atomic_write_jsonl(out / "traces.jsonl", traces)
    log(f"rejection sampling: {counts} in {sample_s:.0f} s")
    del teacher


    plain = get_template("plain")
    sft_records = [{"prompt": plain.render(t["problem"]), "completion": t["completion"]} for t in traces]
    tok = student_tokenizer([r["prompt"] + r["completion"] for r in sft_records]
                            + [plain.render(r["prompt"]) for r in records])
    init = new_student(tok)
    params = sum(p.numel() for p in init.parameters())
    result: dict[str, Any] = {"teacher": str(teacher_dir), "task": task, "rejection_sampling": counts,
                              "student": {"preset": "tiny", "parameters": params, "vocab_size": len(tok)},
                              "eval": STUDENT_EVAL}
    result["init"] = student_pass1(copy.deepcopy(init), tok, task)
    log(f"student ({params / 1e6:.1f}M params, vocab {len(tok)}) at init: pass@1 {100 * result['init']['pass@1']:.1f}%")

    train_common = {"progress": False, "tensorboard": False, "schedule": "constant", "warmup_steps": 10,
                    "entropy_floor": None, "seed": 0}
    t0 = time.perf_counter()
    student = copy.deepcopy(init)
    dcfg = DistillConfig.model_validate({
        "data": {"max_len": 128, "batch_size": 16}, "kd_weight": 0.0,
        "train": {**train_common, "out_dir": str(out / "distill"), "lr": 1e-3, "max_steps": sft_steps}})
    distill(dcfg, records=sft_records, model=student, tokenizer=tok)
    result["distilled"] = {**student_pass1(student, tok, task), "steps": sft_steps,
                           "train_seconds": round(time.perf_counter() - t0, 1)}
    log(f"distilled: pass@1 {100 * result['distilled']['pass@1']:.1f}% ({result['distilled']['train_seconds']} s)")

    t0 = time.perf_counter()
    student = copy.deepcopy(init)
    rcfg = RLConfig.model_validate({
        "data": {"task": task, "template": "plain", "size": len(records)},
        "rollout": {"prompts_per_step": 8, "group_size": 8, "max_new_tokens": 48, "temperature": 1.0},
        "rewards": reward_specs(), "preset": "r1", "objective": {"beta": 0.0},
        "train": {**train_common, "out_dir": str(out / "rl_only"), "lr": 1e-3, "max_steps": rl_steps}})
    res = rl(rcfg, model=student, tokenizer=tok, records=records)
    rewards = [h.get("reward") for h in res.history if h.get("reward") is not None]
    result["rl_only"] = {**student_pass1(student, tok, task), "steps": rl_steps,
                         "train_seconds": round(time.perf_counter() - t0, 1),
                         "train_reward_first_last_10": [sum(rewards[:10]) / max(len(rewards[:10]), 1),
                                                        sum(rewards[-10:]) / max(len(rewards[-10:]), 1)]}
    log(f"RL only: pass@1 {100 * result['rl_only']['pass@1']:.1f}% ({result['rl_only']['train_seconds']} s)")
    atomic_write_json(out / "distill_vs_rl.json", result)
    return result
