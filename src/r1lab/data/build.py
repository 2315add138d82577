"""`r1lab data build`: one typed YAML config -> one JSONL dataset (task records, corpus or cold-start).

Order: load the task split -> exact / near dedup -> decontaminate against evaluation sets -> difficulty
filter -> write traces (corpus / cold_start kinds) -> atomic JSONL write. Every step's removals are counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from r1lab.atomic import atomic_write_jsonl
from r1lab.config import StrictModel
from r1lab.data import hygiene
from r1lab.data.hygiene import DedupConfig, EvalSetConfig
from r1lab.data.tasks import get_task, load_task
from r1lab.data.templates import TEMPLATE_NAMES, get_template
from r1lab.data.tokenizer import load_tokenizer
from r1lab.data.traces import TraceSettings, cold_start_from_records, corpus_from_records
from r1lab.errors import DataError
from r1lab.jsonl import read_jsonl


class DecontaminateConfig(StrictModel):
    against: list[EvalSetConfig] = Field(default_factory=list, description="evaluation sets to keep out")
    n: int = Field(8, ge=1, description="word n-gram size (open-r1: 8); shorter texts count whole")


class DifficultyConfig(StrictModel):
    pass_rates: str = Field(..., description="JSONL of {id, pass_rate} measured earlier")
    min_rate: float = Field(0.0, ge=0.0, le=1.0)
    max_rate: float = Field(1.0, ge=0.0, le=1.0)
    strict: bool = Field(True, description="drop rates equal to a bound (defaults keep 0 < rate < 1)")


class DataBuildConfig(TraceSettings):
    task: str | dict[str, Any] = Field(..., description="task name, e.g. 'arith?operands=4' or 'rg:countdown'")
    kind: Literal["records", "corpus", "cold_start"] = Field("records", description="what to write")
    split: str = Field("train")
    size: int = Field(1000, ge=0)
    seed: int = Field(0)
    template: str | None = Field(None, description="r1 | chat | plain; corpus/cold_start default to plain")
    tokenizer: str | None = Field(None, description="local tokenizer/checkpoint dir (needed by the chat template)")
    style_mix: dict[str, float] | None = Field(None, description="style weights (direct, cot, reflect)")
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig)
    difficulty: DifficultyConfig | None = None


def _read_jsonl(path: str) -> list[dict]:
    return read_jsonl(path).objects()


def build_dataset(cfg: DataBuildConfig, tokenizer: Any = None) -> tuple[list[dict], dict[str, int]]:
    """Records of `cfg.kind` and the counts of every step (loaded, removed per reason, written)."""
    if cfg.template is not None and cfg.template not in TEMPLATE_NAMES:
        raise DataError(f"template: expected one of {', '.join(TEMPLATE_NAMES)}, got {cfg.template!r}")
    task = get_task(cfg.task)
    records = load_task(cfg.task, cfg.split, cfg.size, cfg.seed)
    counts: dict[str, int] = {"loaded": len(records)}
    for key, value in getattr(task, "last_report", {}).items():  # file tasks: rows read, skipped, sampled
        if key not in ("loaded", "returned"):
            counts[f"file_{key}"] = value
    steps = [lambda rs: hygiene.deduplicate(rs, cfg.dedup)]
    for i, ev in enumerate(cfg.decontaminate.against):
        label = ev.path or f"{ev.task}:{ev.split}:{ev.size}:{ev.seed}"
        steps.append(lambda rs, ev=ev, label=label: hygiene.decontaminate(
            rs, hygiene.eval_records(ev), n=cfg.decontaminate.n, label=label))
    if cfg.difficulty is not None:
        rates = {str(r["id"]): float(r["pass_rate"]) for r in _read_jsonl(cfg.difficulty.pass_rates)
                 if "id" in r and "pass_rate" in r}
        d = cfg.difficulty
        steps.append(lambda rs: hygiene.filter_by_pass_rate(
            rs, rates, min_rate=d.min_rate, max_rate=d.max_rate, strict=d.strict))
    for step in steps:
        result = step(records)
        records = result.records
        for k, v in result.counts.items():
            counts[k] = counts.get(k, 0) + v
    if cfg.kind == "corpus":
        records = corpus_from_records(records, cfg.seed, cfg.style_mix, split=cfg.split,
                                      template=cfg.template or "plain", **cfg.corpus_options())
        for r in records:
            counts[f"style_{r['style']}"] = counts.get(f"style_{r['style']}", 0) + 1
    elif cfg.kind == "cold_start":
        records = cold_start_from_records(records, cfg.seed, cfg.style_mix, split=cfg.split,
                                          template=cfg.template or "plain", tokenizer=tokenizer,
                                          **cfg.cold_start_options())
        for r in records:
            counts[f"style_{r['style']}"] = counts.get(f"style_{r['style']}", 0) + 1
    elif cfg.template is not None:
        tpl = get_template(cfg.template)
        records = [{**r, "rendered_prompt": tpl.render(r["prompt"], tokenizer), "prefill": tpl.prefill}
                   for r in records]
    counts["written"] = len(records)
    return records, counts


def write_dataset(cfg: DataBuildConfig, out: str | Path, tokenizer: Any = None) -> dict[str, int]:
    """Build and write atomically as JSONL; returns the step counts."""
    if tokenizer is None and cfg.tokenizer is not None:
        tokenizer = load_tokenizer(cfg.tokenizer)
    records, counts = build_dataset(cfg, tokenizer)
    atomic_write_jsonl(out, records)
    return counts
