"""The eval runner: sample n completions per held-out problem, grade them like the reward, report R1-style.

R1 protocol defaults (docs/RL.md §12): temperature 0.6, top-p 0.95, several samples per problem,
pass@1 = mean over samples, unbiased pass@k, maj@k (cons@k) by majority vote. Every result records the
sampling settings, sample counts and bootstrap intervals, because eval numbers without them cannot be
reproduced. Grading uses exactly the reward's extractor and grader (`r1lab.rewards`), with the task's own
verifier when the task has one, so "correct" means the same thing in RL, rejection sampling and here.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from r1lab.atomic import atomic_write_json, atomic_write_text
from r1lab.data import get_template, load_task
from r1lab.data.answer import DEFAULT_FALLBACKS, extract_answer
from r1lab.data.completion_metrics import computed_steps, reflection_rate, style_metrics
from r1lab.data.thinking_metrics import correction_metrics, difficulty
from r1lab.engine import SamplingParams, make_sampler
from r1lab.errors import ConfigError
from r1lab.eval.completions import read_completions
from r1lab.eval.metrics import bootstrap_ci, default_ks, maj_at_k, pass_at_k
from r1lab.model import is_r1lab_model
from r1lab.rewards import get_reward
from r1lab.rewards.columns import record_columns
from r1lab.rewards.format import strict_format_ok
from r1lab.rewards.grade import DEFAULT_TIMEOUT_S, grade_answer
from r1lab.sources import load_model
from r1lab.sources.loading import is_r1lab_dir, resolve_model_dir

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
N_EXAMPLES = 3


@dataclass
class EvalSettings:
    """Everything that changes the numbers; written next to every result."""

    n: int = 4
    k: int | None = None  # maj@k window; None = n
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 256
    template: str = "auto"
    prefill: str = ""
    split: str = "test"
    size: int = 50
    seed: int = 0
    stop: list[str] = field(default_factory=lambda: ["</answer>"])
    fallbacks: list[str] = field(default_factory=lambda: list(DEFAULT_FALLBACKS))
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES
    bootstrap_seed: int = BOOTSTRAP_SEED
    completions: str | None = None  # graded from this file instead of sampled (then the sampling fields are unused)
    group_by: str | None = None  # metadata key of the per-group breakdown

    def check(self) -> None:
        if self.n < 1:
            raise ConfigError(f"eval: n must be >= 1, got {self.n}")
        if self.k is not None and not 1 <= self.k <= self.n:
            raise ConfigError(f"eval: k must be between 1 and n={self.n}, got {self.k}")
        if self.size < 1:
            raise ConfigError(f"eval: size must be >= 1, got {self.size}")


# -- grading -------------------------------------------------------------------------------------------------
def _graded_by_tests(record: dict) -> bool:
    return record.get("answer") is None and record.get("tests") is not None


def _grade_by_tests(record: dict, texts: Sequence[str], lengths: Sequence[int]) -> dict:
    """A code problem: correct = all its tests pass (the `accuracy` reward's rule); no vote over programs."""
    scores = _accuracy()(list(texts), **record_columns(record, len(texts)))
    correct = [s == 1.0 for s in scores]
    return {
        "id": record.get("id"), "task": record.get("task"), "gold": None, "n": len(texts), "c": sum(correct),
        "correct": correct, "answers": [None] * len(texts), "maj": None, "lengths": list(lengths),
        "format": [strict_format_ok(t) for t in texts], "timeouts": 0,
    }


@lru_cache(maxsize=1)
def _accuracy():
    return get_reward("accuracy")


def grade_problem(record: dict, texts: Sequence[str], lengths: Sequence[int], settings: EvalSettings) -> dict:
    """One problem's samples graded: correctness per sample, extracted answers, maj@k, lengths."""
    if _graded_by_tests(record):
        return _grade_by_tests(record, texts, lengths)
    fallbacks = tuple(settings.fallbacks)
    answers, correct, timeouts = [], [], 0
    for text in texts:
        answer = extract_answer(text, fallbacks)
        grade = grade_answer(answer, record["answer"], task=record.get("task"), metadata=record.get("metadata"),
                             timeout_s=DEFAULT_TIMEOUT_S)
        answers.append(answer)
        correct.append(grade.correct)
        timeouts += grade.timed_out
    k = settings.k or len(texts)
    # the winner of the vote is graded by the same grader; reuse per-sample verdicts where the answer matches
    verdicts = {a: c for a, c in zip(answers, correct) if a is not None}
    maj = maj_at_k(texts, record["answer"], k, fallbacks=fallbacks, grade=lambda a, g: verdicts[a])
    return {
        "id": record.get("id"), "task": record.get("task"), "gold": record["answer"],
        "n": len(texts), "c": sum(correct), "correct": correct, "answers": answers, "maj": maj,
        "lengths": list(lengths), "format": [strict_format_ok(t) for t in texts], "timeouts": timeouts,
        "steps": [computed_steps(t) for t in texts],
    }


def summarize(problems: Sequence[dict], settings: EvalSettings) -> dict:
    """Metrics over a set of graded problems (one task, or all of them)."""
    if not problems:
        return {"problems": 0}
    n = min(p["n"] for p in problems)
    k = settings.k or n
    pass1 = [p["c"] / p["n"] for p in problems]
    maj = [p["maj"] for p in problems if p["maj"] is not None]  # code problems have no vote
    boot = dict(resamples=settings.bootstrap_resamples, seed=settings.bootstrap_seed)
    lengths = [x for p in problems for x in p["lengths"]]
    out = {
        "problems": len(problems),
        "n": n,
        "k": k,
        "pass@1": sum(pass1) / len(pass1),
        "pass@1_ci": list(bootstrap_ci(pass1, **boot)),
        "maj@k": sum(maj) / len(maj) if maj else None,
        "maj@k_ci": list(bootstrap_ci(maj, **boot)) if maj else [None, None],
        "pass@k": {str(kk): sum(pass_at_k(p["n"], p["c"], kk) for p in problems) / len(problems) for kk in default_ks(n)},
        "mean_length": sum(lengths) / len(lengths) if lengths else None,
        **_split_lengths(problems),
        "think_steps_correct_median": _median_steps_correct(problems),
        "format_rate": sum(f for p in problems for f in p["format"]) / sum(len(p["format"]) for p in problems),
        "grader_timeouts": sum(p["timeouts"] for p in problems),
    }
    return out


def _split_lengths(problems: Sequence[dict]) -> dict[str, float | None]:
    """Mean length of correct and of wrong completions apart (Dr. GRPO's decomposition of "thinking time")."""
    right = [n for p in problems if len(p["lengths"]) == p["n"] for n, ok in zip(p["lengths"], p["correct"]) if ok]
    wrong = [n for p in problems if len(p["lengths"]) == p["n"] for n, ok in zip(p["lengths"], p["correct"]) if not ok]
    return {"mean_length_correct": sum(right) / len(right) if right else None,
            "mean_length_wrong": sum(wrong) / len(wrong) if wrong else None}


def _median_steps_correct(problems: Sequence[dict]) -> float | None:
    """Median count of computed steps in the thinking of correct completions: does right reasoning stay written
    out, or collapse to a bare answer?"""
    steps = [s for p in problems if len(p.get("steps", ())) == p["n"]
             for s, ok in zip(p["steps"], p["correct"]) if ok]
    return float(statistics.median(steps)) if steps else None


# -- sampling ------------------------------------------------------------------------------------------------
def _resolve_template(name: str, tokenizer: Any, is_r1lab: bool, think_prefill: bool | None = None):
    if name == "auto":
        if is_r1lab or tokenizer is None or not getattr(tokenizer, "chat_template", None):
            name = "plain" if is_r1lab else "r1"
        else:
            name = "chat"
    return get_template(name, think_prefill=think_prefill)


def _load(model_or_dir: Any, tokenizer: Any) -> tuple[Any, Any, bool]:
    if isinstance(model_or_dir, (str, Path)):
        model, loaded_tokenizer = load_model(model_or_dir)
        return model, tokenizer or loaded_tokenizer, is_r1lab_dir(resolve_model_dir(model_or_dir))

    return model_or_dir, tokenizer, is_r1lab_model(model_or_dir)


def evaluate(
    model_or_dir: Any,
    tasks: str | dict | Sequence[str | dict],
    *,
    n: int = 4,
    k: int | None = None,
    temperature: float = 0.6,
    top_p: float = 0.95,
    max_new_tokens: int = 256,
    template: Any = "auto",
    split: str = "test",
    size: int = 50,
    seed: int = 0,
    stop: Sequence[str] = ("</answer>",),
    fallbacks: Sequence[str] | None = None,
    tokenizer: Any = None,
    sampler: Any = None,
    completions: str | Path | None = None,
    group_by: str | None = None,
    think_prefill: bool | None = None,
    out_dir: str | Path | None = None,
    name: str | None = None,
) -> dict:
    """Evaluate a checkpoint directory (r1lab or any HF causal LM), a loaded model, or a ready `sampler`
    (anything with ``generate(prompts, SamplingParams) -> list[list[Completion]]``) on held-out problems.
    With `completions` (a JSONL file, `r1lab.eval.completions`), grade those instead of sampling: no model is
    loaded, `model_or_dir` only names the result, and lengths (in tokens) are not known.
    With `group_by` (a metadata key of the task's records, e.g. a proof's `depth`), the result also has the
    metrics of each value's problems under ``groups``. `fallbacks`: answer extractors tried when a completion has
    no <answer> block (None: `DEFAULT_FALLBACKS`). `think_prefill` overrides the template's default (chat and
    plain prefill ``<think>\n``; an instruct model asked for code may be better measured without it).

    Returns (and with `out_dir` writes atomically as ``eval.json`` + ``eval.md``) the settings, overall and
    per-task metrics, every problem's graded samples, and a few example completions.
    """

    task_list = [tasks] if isinstance(tasks, (str, dict)) else list(tasks)
    if not task_list:
        raise ConfigError("eval: no task given")
    is_r1lab = False
    if sampler is None and completions is None:
        model, tokenizer, is_r1lab = _load(model_or_dir, tokenizer)

        sampler = make_sampler(model, tokenizer)
    tmpl = template if hasattr(template, "render") else _resolve_template(str(template), tokenizer, is_r1lab,
                                                                          think_prefill)
    settings = EvalSettings(
        n=n, k=k, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, template=tmpl.name,
        prefill=tmpl.prefill, split=split, size=size, seed=seed, stop=list(stop),
        fallbacks=list(DEFAULT_FALLBACKS if fallbacks is None else fallbacks),
        completions=None if completions is None else str(completions), group_by=group_by,
    )
    settings.check()
    params = SamplingParams(n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                            seed=seed, stop=list(stop))

    started = time.monotonic()
    problems, examples, all_texts, all_records, all_correct = [], [], [], [], []
    per_task: dict[str, list[dict]] = {}
    per_group: dict[str, list[dict]] = {}
    for spec in task_list:
        records = load_task(spec, split, size, seed)
        prompts = [tmpl.render(r["prompt"], tokenizer) for r in records]
        if completions is not None:
            given = read_completions(completions, records)
            outputs = [[(text, None) for text in given[r["id"]]] for r in records]
        else:
            outputs = [[(tmpl.prefill + s.text, len(s.token_ids)) for s in samples]
                       for samples in sampler.generate(prompts, params)]
        for record, prompt, samples in zip(records, prompts, outputs):
            texts = [text for text, _ in samples]
            lengths = [length for _, length in samples if length is not None]
            graded = grade_problem(record, texts, lengths, settings)
            problems.append(graded)
            all_texts += texts
            all_records += [record] * len(texts)
            all_correct += graded["correct"]
            label = record.get("task") if isinstance(record.get("task"), str) else str(spec)
            per_task.setdefault(label, []).append(graded)
            group = _group_value(record, group_by)
            if group is not None:
                per_group.setdefault(str(group), []).append(graded)
            if len(examples) < N_EXAMPLES:
                examples.append({"prompt": prompt, "completion": texts[0], "correct": graded["correct"][0],
                                 "metadata": record.get("metadata") or {}})

    overall = summarize(problems, settings)
    overall["reflection_rate"] = reflection_rate(all_texts)
    overall.update({k.removeprefix("completions/"): v
                    for k, v in {**correction_metrics(all_texts, all_records, all_correct),
                                 **style_metrics(all_texts, all_correct)}.items()})
    result = {
        "name": name or (Path(str(model_or_dir)).name if isinstance(model_or_dir, (str, Path)) else type(model_or_dir).__name__),
        "model": str(model_or_dir) if isinstance(model_or_dir, (str, Path)) else None,
        "settings": asdict(settings),
        "overall": overall,
        "tasks": {t: summarize(ps, settings) for t, ps in per_task.items()},
        "groups": {g: summarize(ps, settings) for g, ps in sorted(per_group.items(), key=_group_order)},
        "problems": problems,
        "examples": examples,
        "seconds": time.monotonic() - started,
    }
    if out_dir is not None:
        write_results(result, out_dir)
    return result


def _group_value(record: dict, key: str | None) -> Any:
    """The record's metadata value for `key`; `difficulty` falls back to the task's own difficulty bucket."""
    if key is None:
        return None
    meta = record.get("metadata") or {}
    if key in meta:
        return meta[key]
    return difficulty(record) if key == "difficulty" else None


def _group_order(item: tuple[str, list]) -> tuple:
    """Numeric group values in numeric order (depth 2 before 10), others after, alphabetically."""
    try:
        return (0, float(item[0]), "")
    except ValueError:
        return (1, 0.0, item[0])


# -- output --------------------------------------------------------------------------------------------------
def _pct(x: Any) -> str:
    return "–" if not isinstance(x, (int, float)) or math.isnan(x) else f"{100 * x:.1f}"


def _num(x: Any) -> str:
    return "–" if not isinstance(x, (int, float)) or math.isnan(x) else f"{x:.1f}"


def to_markdown(result: dict) -> str:
    s = result["settings"]
    k = result["overall"].get("k", s["n"])
    if s.get("completions"):
        source = (f"Completions graded from `{s['completions']}` (not sampled), split={s['split']}, "
                  f"size={s['size']}. ")
    else:
        source = (f"Sampling: n={s['n']} per problem, temperature={s['temperature']}, top_p={s['top_p']}, "
                  f"max_new_tokens={s['max_new_tokens']}, template={s['template']!s} (prefill {s['prefill']!r}), "
                  f"split={s['split']}, size={s['size']}, seed={s['seed']}, stop={s['stop']}. ")
    lines = [
        f"# Evaluation: {result['name']}",
        "",
        source + f"Intervals: 95% percentile bootstrap over problems ({s['bootstrap_resamples']} resamples, seed {s['bootstrap_seed']}).",
        "",
        f"| task | problems | pass@1 (%) | 95% CI | maj@{k} (%) | 95% CI | pass@k (%) | mean length | format (%) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [*result["tasks"].items(), ("**all**", result["overall"])] if len(result["tasks"]) > 1 else [*result["tasks"].items()]
    for task, m in rows:
        if not m.get("problems"):
            continue
        passk = ", ".join(f"@{kk} {_pct(v)}" for kk, v in m["pass@k"].items())
        lines.append(
            f"| {task} | {m['problems']} | {_pct(m['pass@1'])} | [{_pct(m['pass@1_ci'][0])}, {_pct(m['pass@1_ci'][1])}] "
            f"| {_pct(m['maj@k'])} | [{_pct(m['maj@k_ci'][0])}, {_pct(m['maj@k_ci'][1])}] | {passk} "
            f"| {_num(m['mean_length'])} | {_pct(m['format_rate'])} |"
        )
    if result.get("groups"):
        lines += ["", f"| {s.get('group_by')} | problems | pass@1 (%) | 95% CI |", "|---|---|---|---|"]
        for group, m in result["groups"].items():
            lines.append(f"| {group} | {m['problems']} | {_pct(m['pass@1'])} "
                         f"| [{_pct(m['pass@1_ci'][0])}, {_pct(m['pass@1_ci'][1])}] |")
    timeouts = result["overall"].get("grader_timeouts", 0)
    if timeouts:
        lines += ["", f"Grader time-outs (scored wrong): {timeouts}."]
    if result.get("examples"):
        lines += ["", "## Examples", ""]
        for ex in result["examples"]:
            mark = "correct" if ex["correct"] else "wrong"
            lines += [f"**Prompt** ({mark}):", "", "```", ex["prompt"], "```", "", "```", ex["completion"], "```", ""]
    return "\n".join(lines) + "\n"


def write_results(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    atomic_write_json(out / "eval.json", result)
    atomic_write_text(out / "eval.md", to_markdown(result))
    return out / "eval.json", out / "eval.md"
