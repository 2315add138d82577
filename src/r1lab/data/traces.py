"""Worked solutions in three styles for the synthetic tasks: pretraining corpus and cold-start SFT data.

Styles (docs/TINY_RECIPE.md): `direct` (no working; on hard problems wrong at `direct_error_rate`),
`cot` (one step per line), `reflect` (the steps, where a slipped step is followed by
"wait, let me check: ..." and the corrected step, then a final check). A base model pretrained on a fixed
mix of these samples all three, and an accuracy reward can then move it toward the longer, reflective,
more accurate styles -- R1-Zero's growing length and "aha" words, in miniature.
Every `cot` / `reflect` trace is checked by the task's verifier before it is returned.
"""

from __future__ import annotations

import random
from typing import Any, Literal, get_args

from pydantic import Field

from r1lab.config import StrictModel
from r1lab.data.answer import extract_answer
from r1lab.data.records import split_seed
from r1lab.data.tasks.base import TaskSpec, get_task
from r1lab.data.tasks.synthetic import SyntheticTask
from r1lab.data.templates import format_completion, get_template
from r1lab.errors import DataError

STYLES = ("direct", "cot", "reflect")
SlipSteps = Literal["any", "hard"]  # where slips land: any step, or only the carries/borrows (hard steps)
SLIP_STEPS: tuple[str, ...] = get_args(SlipSteps)
CheckSteps = Literal["slipped", "hard"]  # what a reflect trace rechecks: its slip only, or every hard step too
CHECK_STEPS: tuple[str, ...] = get_args(CheckSteps)
CheckForm = Literal["restate", "decompose"]  # a recheck restates the step, or recomputes it two terms at a time
CHECK_FORMS: tuple[str, ...] = get_args(CheckForm)
REFLECT_PHRASE = "wait, let me check:"
DEFAULT_CORPUS_MIX = {"direct": 0.4, "cot": 0.3, "reflect": 0.3}
DEFAULT_COLD_START_MIX = {"cot": 0.5, "reflect": 0.5}
EOS_TOKEN = "<|eos|>"


class TraceSettings(StrictModel):
    """How worked solutions are written: the knobs of `build_corpus` and `cold_start_records`, declared once for
    every config that writes traces (the recipe's `data` section, `r1lab data build`)."""

    direct_error_rate: float = Field(0.5, ge=0, le=1, description="wrong direct answers on hard problems")
    slip_rate: float = Field(0.5, ge=0, le=1, description="reflect-style traces that slip and self-correct")
    cot_slip_rate: float = Field(0.0, ge=0, le=1, description="cot-style traces that slip and never notice "
                                 "(the slip runs on to a wrong answer)")
    slip_steps: SlipSteps = Field("any", description="where slips land: any step, or only the "
                                                "carries/borrows (hard steps)")
    check_steps: CheckSteps = Field("slipped", description="what a reflect trace rechecks: its slip only, or "
                                    "every hard step (a check habit that needs no foresight of the slip)")
    final_check: bool = Field(True, description="reflect traces end with a check line (\"check: 85-38=47 ok\")")
    check_form: CheckForm = Field("restate", description="a recheck restates the step (\"7+8+1=16 carry 1\") or "
                                  "recomputes it two terms at a time (\"7+8=15, 15+1=16, so 7+8+1=16 carry 1\")")

    def corpus_options(self) -> dict[str, Any]:
        """Keyword arguments of `build_corpus` / `corpus_from_records`."""
        return self.model_dump(include=set(TraceSettings.model_fields))

    def cold_start_options(self) -> dict[str, Any]:
        """Keyword arguments of `cold_start_records` / `cold_start_from_records` (no wrong answers there)."""
        return self.model_dump(include={"slip_rate", "slip_steps", "check_steps", "final_check", "check_form"})


def normalize_mix(style_mix: dict[str, float] | None, default: dict[str, float]) -> dict[str, float]:
    mix = dict(default if style_mix is None else style_mix)
    unknown = set(mix) - set(STYLES)
    if unknown:
        raise DataError(f"style_mix: unknown style(s) {sorted(unknown)}; known: {', '.join(STYLES)}")
    if any((not isinstance(v, (int, float))) or v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise DataError(f"style_mix: weights must be >= 0 and sum to > 0, got {mix}")
    total = float(sum(mix.values()))
    return {s: mix[s] / total for s in STYLES if mix.get(s, 0) > 0}


def style_counts(mix: dict[str, float], size: int) -> dict[str, int]:
    """Exact per-style counts (largest remainder), so the proportions are fixed, not sampled."""
    raw = {s: p * size for s, p in mix.items()}
    counts = {s: int(v) for s, v in raw.items()}
    short = size - sum(counts.values())
    for s in sorted(raw, key=lambda s: (-(raw[s] - counts[s]), STYLES.index(s)))[:short]:
        counts[s] += 1
    return counts


def assign_styles(size: int, mix: dict[str, float], rng: random.Random) -> list[str]:
    styles = [s for s, c in style_counts(mix, size).items() for _ in range(c)]
    rng.shuffle(styles)
    return styles


def _one_task(records: list[dict]) -> SyntheticTask:
    names = {r["task"] for r in records}
    if len(names) != 1:
        raise DataError(f"traces are written for one task at a time, got records of {sorted(names)}")
    return _synthetic(names.pop())


def _synthetic(task: TaskSpec) -> SyntheticTask:
    t = get_task(task)
    if not isinstance(t, SyntheticTask):
        raise DataError(f"task {t.name!r} has no programmatic worked solutions; use a synthetic task (arith, column_add)")
    return t


def write_trace(
    task: SyntheticTask,
    record: dict,
    style: str,
    rng: random.Random,
    *,
    direct_error_rate: float = 0.5,
    slip_rate: float = 0.5,
    cot_slip_rate: float = 0.0,
    slip_steps: SlipSteps = "any",
    check_steps: CheckSteps = "slipped",
    final_check: bool = True,
    check_form: CheckForm = "restate",
) -> dict[str, Any]:
    """One completion of `record` in `style`: {completion, style, correct, slipped}.

    Both worked styles can slip on a step (`slip_steps`: any step, or only the carries/borrows people get
    wrong). A `reflect` trace catches its slip and corrects it (rate `slip_rate`); a `cot` trace does not
    (rate `cot_slip_rate`): the wrong value runs on to a wrong answer. With equal rates the two styles make
    the same first-pass mistakes and differ only in checking, so checking pays under the model's own sampling.
    `check_steps="hard"`: a reflect trace rechecks every hard step, slipped or not, so writing the check needs no
    foresight of the slip (a habit the model can sample before it errs), and most checks change nothing.
    `final_check=False` leaves out the closing check line ("check: 85-38=47 ok"): the tiny model cannot do that
    subtraction, and copying the answer into it is where its corrected solutions went wrong (notebook entry M).
    `check_form="decompose"` writes each recheck two terms at a time (`Step.decomposed_line`), a different and
    easier computation than the one-line step it checks (notebook entry P: a restated step is the same one).
    """
    if style == "direct":
        wrong = task.is_hard(record) and rng.random() < direct_error_rate
        answer = task.wrong_answer(record, rng) if wrong else task.answer_text(record)
        return {"completion": format_completion("", answer), "style": style, "correct": not wrong, "slipped": False}
    if style not in ("cot", "reflect"):
        raise DataError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
    if slip_steps not in SLIP_STEPS:
        raise DataError(f"slip_steps: expected one of {', '.join(SLIP_STEPS)}, got {slip_steps!r}")
    if check_steps not in CHECK_STEPS:
        raise DataError(f"check_steps: expected one of {', '.join(CHECK_STEPS)}, got {check_steps!r}")
    if check_form not in CHECK_FORMS:
        raise DataError(f"check_form: expected one of {', '.join(CHECK_FORMS)}, got {check_form!r}")
    steps = task.steps(record)
    slippable = task.hard_steps(record) if slip_steps == "hard" else list(range(len(steps)))
    lines = [s.line() for s in steps]
    answer = task.answer_text(record)
    slipped = False
    if style == "reflect":
        slip = slippable[rng.randrange(len(slippable))] if slippable and rng.random() < slip_rate else None
        rechecked = set(task.hard_steps(record)) if check_steps == "hard" else set()
        for k in sorted(rechecked | ({slip} if slip is not None else set())):
            first = task.slipped_line(steps[k], rng) if k == slip else steps[k].line()
            recheck = steps[k].decomposed_line() if check_form == "decompose" else steps[k].line()
            lines[k] = f"{first}\n{REFLECT_PHRASE} {recheck}"
        slipped = slip is not None
        if final_check:
            lines.append(task.check_line(record))
    elif cot_slip_rate > 0 and slippable and rng.random() < cot_slip_rate:
        lines, answer = task.slipped_solution(record, slippable[rng.randrange(len(slippable))], rng)
        slipped = True
    completion = format_completion("\n".join(lines), answer)
    correct = task.verify(final_answer(completion), record)
    unchecked_slip = style == "cot" and slipped  # the only worked trace that may, and must, be wrong
    if correct == unchecked_slip:
        raise AssertionError(f"worked {style} trace for {record['prompt']!r} (slipped: {slipped}) "
                             f"{'passed' if correct else 'failed'} its own verifier")
    return {"completion": completion, "style": style, "correct": bool(correct), "slipped": slipped}


def final_answer(completion: str) -> str | None:
    """The answer block of a completion, read with the one extractor of rewards, eval and sampling."""
    return extract_answer(completion)


def _traced(
    task: SyntheticTask, records: list[dict], seed: int, split: str, mix: dict[str, float],
    direct_error_rate: float, slip_rate: float, cot_slip_rate: float = 0.0, slip_steps: SlipSteps = "any",
    check_steps: CheckSteps = "slipped", final_check: bool = True, check_form: CheckForm = "restate",
) -> list[tuple[dict, dict]]:
    rng = random.Random(split_seed(seed, split, salt=f"traces:{task.name}"))
    styles = assign_styles(len(records), mix, rng)
    return [
        (rec, write_trace(task, rec, style, rng, direct_error_rate=direct_error_rate, slip_rate=slip_rate,
                          cot_slip_rate=cot_slip_rate, slip_steps=slip_steps, check_steps=check_steps,
                          final_check=final_check, check_form=check_form))
        for rec, style in zip(records, styles)
    ]


def corpus_from_records(
    records: list[dict],
    seed: int = 0,
    style_mix: dict[str, float] | None = None,
    *,
    split: str = "train",
    template: str = "plain",
    direct_error_rate: float = 0.5,
    slip_rate: float = 0.5,
    cot_slip_rate: float = 0.0,
    slip_steps: SlipSteps = "any",
    check_steps: CheckSteps = "slipped",
    final_check: bool = True,
    check_form: CheckForm = "restate",
    eos_token: str = EOS_TOKEN,
) -> list[dict]:
    """Pretraining documents for already-loaded records of one synthetic task (see `build_corpus`)."""
    if not records:
        return []
    task = _one_task(records)
    mix = normalize_mix(style_mix, DEFAULT_CORPUS_MIX)
    tpl = get_template(template)
    out = []
    for rec, tr in _traced(task, records, seed, split, mix, direct_error_rate, slip_rate, cot_slip_rate, slip_steps,
                           check_steps, final_check, check_form):
        text = tpl.render(rec["prompt"]) + tpl.split_completion(tr["completion"]) + eos_token
        out.append({"id": rec["id"], "text": text, "prompt": rec["prompt"], "answer": rec["answer"],
                    "task": rec["task"], "style": tr["style"], "correct": tr["correct"], "slipped": tr["slipped"],
                    "metadata": rec["metadata"]})
    return out


def build_corpus(
    task: TaskSpec,
    size: int,
    seed: int = 0,
    style_mix: dict[str, float] | None = None,
    *,
    split: str = "train",
    template: str = "plain",
    direct_error_rate: float = 0.5,
    slip_rate: float = 0.5,
    cot_slip_rate: float = 0.0,
    slip_steps: SlipSteps = "any",
    check_steps: CheckSteps = "slipped",
    final_check: bool = True,
    check_form: CheckForm = "restate",
    eos_token: str = EOS_TOKEN,
) -> list[dict]:
    """Pretraining documents `{id, text, prompt, answer, task, style, correct, slipped, metadata}`.

    `text` = rendered prompt + completion + EOS, with no BOS: the tiny tokenizer adds BOS when encoding,
    as it does for prompts at sampling time. Styles come in the exact proportions of `style_mix`.
    """
    records = _synthetic(task).records(split, size, seed)
    return corpus_from_records(records, seed, style_mix, split=split, template=template,
                               direct_error_rate=direct_error_rate, slip_rate=slip_rate,
                               cot_slip_rate=cot_slip_rate, slip_steps=slip_steps, check_steps=check_steps,
                               final_check=final_check, check_form=check_form, eos_token=eos_token)


def cold_start_from_records(
    records: list[dict],
    seed: int = 0,
    style_mix: dict[str, float] | None = None,
    *,
    split: str = "train",
    template: str = "plain",
    tokenizer: Any = None,
    slip_rate: float = 0.5,
    slip_steps: SlipSteps = "any",
    check_steps: CheckSteps = "slipped",
    final_check: bool = True,
    check_form: CheckForm = "restate",
) -> list[dict]:
    """Cold-start SFT records for already-loaded records of one synthetic task (see `cold_start_records`)."""
    if not records:
        return []
    task = _one_task(records)
    mix = normalize_mix(style_mix, DEFAULT_COLD_START_MIX)
    tpl = get_template(template)
    out = []
    for rec, tr in _traced(task, records, seed, split, mix, 0.0, slip_rate, 0.0, slip_steps,  # no uncaught slips
                           check_steps, final_check, check_form):
        out.append({
            "id": rec["id"], "prompt": tpl.render(rec["prompt"], tokenizer),
            "completion": tpl.split_completion(tr["completion"]), "answer": rec["answer"], "task": rec["task"],
            "style": tr["style"], "metadata": {**rec["metadata"], "problem": rec["prompt"], "slipped": tr["slipped"]},
        })
    return out


def cold_start_records(
    task: TaskSpec,
    size: int,
    seed: int = 0,
    style_mix: dict[str, float] | None = None,
    *,
    split: str = "train",
    template: str = "plain",
    tokenizer: Any = None,
    slip_rate: float = 0.5,
    slip_steps: SlipSteps = "any",
    check_steps: CheckSteps = "slipped",
    final_check: bool = True,
    check_form: CheckForm = "restate",
) -> list[dict]:
    """R1 stage-1 SFT records `{id, prompt, completion, answer, task, style, metadata}`, all verified correct.

    `prompt` is rendered with the template (it ends with the template's prefill) and `completion` is the
    rest, so prompt + completion is one well-formed R1 response. Direct answers, if asked for, are correct.
    """
    records = _synthetic(task).records(split, size, seed)
    return cold_start_from_records(records, seed, style_mix, split=split, template=template,
                                   tokenizer=tokenizer, slip_rate=slip_rate, slip_steps=slip_steps,
                                   check_steps=check_steps, final_check=final_check, check_form=check_form)
