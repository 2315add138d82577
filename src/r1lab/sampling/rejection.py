"""Rejection sampling (R1 stage 3): sample n completions per prompt from a checkpoint, keep the ones the RL
verifier accepts that also pass the format and language checks, deduplicate, decontaminate against evaluation
problems, and write an SFT JSONL whose records say where they came from.

Acceptance reuses the reward library, so "correct" means exactly what it meant during RL and what it means at
evaluation: `accuracy` == 1, strict `format` == 1, `language_consistency` >= a threshold (or not applicable).
Truncated completions (no stop / EOS) are never kept. Optional R1-style readability filters drop CoTs with code
blocks or over-long paragraphs. Output records: `prompt` (rendered, ending with the template's prefill, as SFT
reads it), `completion` (what the model wrote after it), `problem`, `answer`, `task`, `id`, and `metadata`
with the hygiene provenance plus a `rejection_sampling` entry: checkpoint, sampling settings, reward values.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pydantic import Field, model_validator
from tqdm.auto import tqdm

from r1lab.atomic import atomic_write_json, atomic_write_jsonl
from r1lab.config import StrictModel
from r1lab.data import get_template, load_task
from r1lab.data.hygiene import (
    DedupConfig,
    EvalSetConfig,
    decontaminate,
    deduplicate,
    eval_records,
)
from r1lab.data.prompts import PromptDataConfig
from r1lab.data.tokenizer import load_tokenizer
from r1lab.engine import SamplingParams, make_sampler
from r1lab.errors import DataError
from r1lab.jsonl import read_jsonl
from r1lab.rewards import RewardSpec, build_reward, combine_rewards, get_reward
from r1lab.rewards.columns import record_columns
from r1lab.seeds import derive_seed
from r1lab.sources import load_model


class AcceptRule(StrictModel):
    """A completion is kept only if this reward scores at least `min` (a reward that cannot judge it: kept
    unless `required`)."""

    name: str = Field(..., description="registered reward name (or 'module:function')")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters of the reward's factory")
    min: float = Field(1.0, description="lowest accepted score")
    required: bool = Field(True, description="reject when the reward returns None (cannot judge)")


class RejectionConfig(StrictModel):
    checkpoint: str = Field("runs/tiny/rl/checkpoint", description="model dir or source name to sample from")
    tokenizer: str | None = Field(None, description="tokenizer dir/file when the checkpoint ships none")
    data: PromptDataConfig = Field(default_factory=PromptDataConfig, description="prompts (task, split, size, template)")
    n: int = Field(4, ge=1, description="samples per prompt")
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    stop: list[str] = Field(default_factory=list)
    seed: int = Field(0, description="sampling seed (each prompt batch derives its own)")
    few_shot: int = Field(0, ge=0, description="worked examples shown before each prompt (the first records of "
                          "few_shot_path), so a model that never wrote the format imitates it; kept records "
                          "keep the prompt without them")
    few_shot_path: str | None = Field(None, description="JSONL of worked examples: `completion` (after the "
                                      "template's prefill) and the problem as `problem` or `metadata.problem`")
    prompts_per_batch: int = Field(16, ge=1, description="prompts per engine call")
    backend: str = Field("auto", description="engine backend")
    accept: list[AcceptRule] = Field(default_factory=list, description="the acceptance rule as rewards and "
                                     "thresholds; empty: accuracy == 1, the strict format (require_format) and "
                                     "the language check below")
    require_format: bool = Field(True, description="keep only completions with the strict R1 format")
    language: str | None = Field("en", description="target CoT language; None: no language check")
    min_language_share: float = Field(0.95, ge=0, le=1, description="minimum language_consistency score")
    drop_code_blocks: bool = Field(False, description="drop completions whose reasoning contains ``` blocks")
    max_paragraph_chars: int | None = Field(None, ge=1, description="drop completions with a longer paragraph")
    max_per_prompt: int | None = Field(None, ge=1, description="keep at most this many completions per prompt")
    dedup: DedupConfig = Field(default_factory=lambda: DedupConfig(exact=False, near=True),
                               description="duplicates removed on problem + completion")
    decontaminate: list[EvalSetConfig] = Field(default_factory=list, description="evaluation sets to remove overlap with")
    decontam_ngram: int = Field(8, ge=1)
    out: str = Field("runs/tiny/sample/data.jsonl", description="output SFT JSONL (a .summary.json goes next to it)")
    progress: bool = Field(True, description="show a progress bar with ETA over prompt batches")

    @model_validator(mode="after")
    def _shots_have_a_source(self) -> "RejectionConfig":
        if self.few_shot and not self.few_shot_path:
            raise ValueError("few_shot needs few_shot_path (a JSONL of worked examples)")
        return self


@dataclass
class RejectionResult:
    records: list[dict]
    counts: dict[str, int] = field(default_factory=dict)  # sampled, kept, and one count per rejection reason
    path: Path | None = None


def rejection_reason(cfg: RejectionConfig, text: str, finish_reason: str, rewards: dict[str, float | None]) -> str | None:
    """Why a completion is rejected (None: accepted). Checks run in a fixed order; the first failing one names it."""
    if finish_reason != "stop":
        return "truncated"
    if cfg.accept:
        for rule in cfg.accept:
            value = rewards.get(_rule_key(rule))
            if value is None and rule.required or value is not None and value < rule.min - 1e-9:
                return f"below/{rule.name}"
        return _readability_reason(cfg, text)
    if (rewards.get("accuracy") or 0.0) < 1.0 - 1e-9:
        return "incorrect"
    if cfg.require_format and (rewards.get("format") or 0.0) < 1.0 - 1e-9:
        return "format"
    share = rewards.get("language_consistency")
    if cfg.language is not None and share is not None and share < cfg.min_language_share:
        return "language"
    return _readability_reason(cfg, text)


def _readability_reason(cfg: RejectionConfig, text: str) -> str | None:
    """R1's optional readability filters, applied whatever the acceptance rule."""
    if cfg.drop_code_blocks and "```" in text:
        return "code_block"
    if cfg.max_paragraph_chars is not None and any(len(p) > cfg.max_paragraph_chars for p in text.split("\n\n")):
        return "long_paragraph"
    return None


def _rule_key(rule: AcceptRule) -> str:
    return rule.name if not rule.params else f"{rule.name}{sorted(rule.params.items())}"


def _acceptance_reward(cfg: RejectionConfig) -> Any:
    if cfg.accept:
        functions = {_rule_key(r): get_reward(r.name, **r.params) for r in cfg.accept}
        return combine_rewards(dict.fromkeys(functions, 0.0), functions=functions)
    specs = [RewardSpec(name="accuracy"), RewardSpec(name="format", weight=0.0)]
    if cfg.language is not None:
        specs.append(RewardSpec(name="language_consistency", weight=0.0))
    return build_reward(specs)


def _eval_prompts(specs: Sequence[EvalSetConfig]) -> list[str]:
    return [r["prompt"] for spec in specs for r in eval_records(spec)]


def sampling_settings(cfg: RejectionConfig) -> dict[str, Any]:
    return {"n": cfg.n, "max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature, "top_p": cfg.top_p,
            "top_k": cfg.top_k, "stop": list(cfg.stop), "seed": cfg.seed, "template": cfg.data.template,
            "think_prefill": cfg.data.think_prefill, "few_shot": cfg.few_shot}


def few_shot_examples(path: str | Path, k: int) -> list[tuple[str, str]]:
    """The first `k` worked examples of a JSONL as (problem, completion) pairs."""
    shots = []
    for lineno, rec in read_jsonl(path, kind="few-shot file").records[:k]:
        problem = rec.get("problem") or (rec.get("metadata") or {}).get("problem")
        if not problem or not rec.get("completion"):
            raise DataError(f"{path}:{lineno}: a worked example needs `completion` and `problem` (or `metadata.problem`)")
        shots.append((problem, rec["completion"]))
    if len(shots) < k:
        raise DataError(f"{path}: few_shot is {k} but the file holds only {len(shots)} worked examples")
    return shots


def rejection_sample(cfg: RejectionConfig, sampler: Any, records: Sequence[dict], *, tokenizer: Any = None,
                     checkpoint: str | None = None, eval_prompts: Sequence[str] | None = None) -> RejectionResult:
    """Sample, verify, filter, dedupe and decontaminate; returns the kept SFT records and counts (no file I/O)."""

    template = get_template(cfg.data.template, think_prefill=cfg.data.think_prefill)
    shown = template.with_shots(few_shot_examples(cfg.few_shot_path, cfg.few_shot)) if cfg.few_shot else template
    reward = _acceptance_reward(cfg)
    settings = sampling_settings(cfg)
    counts: dict[str, int] = {"prompts": len(records), "sampled": 0}
    kept: list[dict] = []

    starts = range(0, len(records), cfg.prompts_per_batch)
    for b, start in enumerate(tqdm(starts, desc="sampling", unit="batch", disable=not cfg.progress)):
        batch = list(records[start:start + cfg.prompts_per_batch])
        rendered = [template.render(r["prompt"], tokenizer) for r in batch]
        to_sampler = [shown.render(r["prompt"], tokenizer) for r in batch] if cfg.few_shot else rendered
        params = SamplingParams(n=cfg.n, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                                top_p=cfg.top_p, top_k=cfg.top_k, stop=list(cfg.stop), seed=derive_seed(cfg.seed, b))
        for rec, prompt, comps in zip(batch, rendered, sampler.generate(to_sampler, params)):
            n = len(comps)
            columns = record_columns(rec, n, prefill=template.prefill, lang=cfg.language)
            scores = reward.score([c.text for c in comps], **columns).components
            accepted = 0
            for i, c in enumerate(comps):
                counts["sampled"] += 1
                values = {name: vals[i] for name, vals in scores.items()}
                reason = rejection_reason(cfg, c.text, c.finish_reason, values)
                if reason is None and cfg.max_per_prompt is not None and accepted >= cfg.max_per_prompt:
                    reason = "per_prompt_cap"
                if reason is not None:
                    counts[f"rejected/{reason}"] = counts.get(f"rejected/{reason}", 0) + 1
                    continue
                accepted += 1
                digest = hashlib.sha256(f"{rec.get('id')}\n{c.text}".encode()).hexdigest()[:12]
                meta = dict(rec.get("metadata") or {})
                meta["provenance"] = [*meta.get("provenance", []), {
                    "step": "rejection_sampling", "checkpoint": checkpoint, "sampling": settings,
                    "sample_index": i, "rewards": values, "completion_tokens": len(c.token_ids)}]
                kept.append({"id": f"{rec.get('id')}-rs-{digest}", "prompt": prompt, "completion": c.text,
                             "problem": rec["prompt"], "answer": rec.get("answer"), "task": rec.get("task"),
                             "source_id": rec.get("id"), "metadata": meta,
                             "_dedup_text": rec["prompt"] + "\n" + c.text})
    counts["verified"] = len(kept)
    if cfg.dedup.exact or cfg.dedup.near:
        res = deduplicate(kept, cfg.dedup, key="_dedup_text")
        kept, counts["rejected/duplicate"] = res.records, res.n_removed
    if eval_prompts:
        res = decontaminate(kept, eval_prompts, n=cfg.decontam_ngram, key="problem")
        kept, counts["rejected/contaminated"] = res.records, res.n_removed
    for r in kept:
        r.pop("_dedup_text", None)
    counts["kept"] = len(kept)
    return RejectionResult(records=kept, counts=counts)


def write_sft_jsonl(path: str | Path, result: RejectionResult, summary: dict[str, Any]) -> Path:
    """The JSONL and `<name>.summary.json` next to it, each written atomically."""
    path = Path(path)
    atomic_write_jsonl(path, result.records)
    atomic_write_json(path.with_suffix(".summary.json"), {**summary, "counts": result.counts})
    result.path = path
    return path


def sample(cfg: RejectionConfig, *, model: Any = None, tokenizer: Any = None, records: Sequence[dict] | None = None,
           sampler: Any = None) -> RejectionResult:
    """The rejection-sampling stage: load the checkpoint, sample, filter and write `cfg.out`."""
    t0 = time.perf_counter()
    if model is None:
        model, loaded_tok = load_model(cfg.checkpoint)
        tokenizer = tokenizer or loaded_tok
    if tokenizer is None and cfg.tokenizer is not None:
        tokenizer = load_tokenizer(cfg.tokenizer)
    if records is None:
        records = load_task(cfg.data.task, cfg.data.split, cfg.data.size, cfg.data.seed)
    if sampler is None:
        sampler = make_sampler(model, tokenizer, backend=cfg.backend)
    result = rejection_sample(cfg, sampler, records, tokenizer=tokenizer, checkpoint=cfg.checkpoint,
                              eval_prompts=_eval_prompts(cfg.decontaminate) if cfg.decontaminate else None)
    summary = {"checkpoint": cfg.checkpoint, "sampling": sampling_settings(cfg), "task": cfg.data.model_dump(),
               "config": cfg.model_dump(mode="json"), "seconds": round(time.perf_counter() - t0, 3)}
    write_sft_jsonl(cfg.out, result, summary)
    return result
