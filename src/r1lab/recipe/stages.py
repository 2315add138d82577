"""The R1 recipe's stages: each links its typed config to upstream artifacts and calls one trainer.

Flow (DeepSeek-R1 §2, at tiny scale):
  data → base (pretrain V3: MLA + MoE + MTP)
       → r1_zero (RL directly on the base)
       → cold_start (SFT on chain-of-thought; with `cold_start_data`, on R1-Zero's verified samples too)
         → r1_rl (reasoning RL) → rejection (sample + verify)
         → r1_sft (SFT of the *base* on what was kept, as R1 does) → r1 (second RL stage)
       → distill_data (verified traces of the final R1 model)
         → student_base (pretrain a smaller dense student) → student_distill | student_rl
  eval (every checkpoint, R1 protocol) → report
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel
from tqdm.auto import tqdm

from r1lab.atomic import atomic_write_json, atomic_write_jsonl
from r1lab.data import build_corpus, cold_start_records, load_task
from r1lab.data.hygiene import decontaminate
from r1lab.data.tokenizer import load_tokenizer, train_tokenizer
from r1lab.errors import ConfigError, DataError, R1labError
from r1lab.eval import evaluate
from r1lab.pipeline import Stage, StageContext
from r1lab.recipe.config import RecipeConfig
from r1lab.report import read_jsonl
from r1lab.sampling.rejection import sample
from r1lab.sources import resolve_model_dir
from r1lab.train.rl import rl
from r1lab.train.stages.distill import distill
from r1lab.train.stages.pretrain import pretrain
from r1lab.train.stages.sft import sft

# Checkpoints evaluated at the end, in report order: (stage, label in the report).
EVALUATED = [
    ("base", "base (pretrained V3)"),
    ("r1_zero", "R1-Zero (RL on base)"),
    ("cold_start", "cold-start SFT"),
    ("r1_rl", "reasoning RL"),
    ("r1_sft", "rejection-sampling SFT"),
    ("r1", "R1 (second RL)"),
    ("student_base", "student base"),
    ("student_distill", "student distilled from R1"),
    ("student_rl", "student RL only"),
]


def linked(section: BaseModel, **dotted: Any) -> BaseModel:
    """A validated copy of a stage config with fields replaced; `train__out_dir` means `train.out_dir`."""
    data = section.model_dump(mode="json")
    for key, value in dotted.items():
        node = data
        *parents, leaf = key.split("__")
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[leaf] = value
    return type(section).model_validate(data)


def _train_links(cfg: RecipeConfig, ctx: StageContext) -> dict[str, Any]:
    return {"train__out_dir": str(ctx.stage_dir), "train__seed": cfg.seed, "train__resume": ctx.resume,
            "train__progress": cfg.progress}


def _ckpt(ctx: StageContext, stage: str) -> str:
    return str(ctx.artifact(stage, "checkpoint"))


# The stages that train or evaluate the student: it has its own tiny tokenizer, so its own prompt template.
STUDENT_STAGES = frozenset({"student_base", "student_distill", "student_rl"})


def template_of(cfg: RecipeConfig, stage: str) -> str:
    """The prompt template of the model a stage trains or samples: the student's, or the main model's."""
    return cfg.task.student_template if stage in STUDENT_STAGES else cfg.task.template


def _task_links(cfg: RecipeConfig, stage: str) -> dict[str, Any]:
    return {"data__task": cfg.task.spec, "data__split": "train", "data__seed": cfg.task.seed,
            "data__template": template_of(cfg, stage)}


def _trained(result: Any, ctx: StageContext) -> dict[str, Any]:
    rel = Path(result.checkpoint).resolve().relative_to(ctx.run_dir.resolve())
    last = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    return {"artifacts": {"checkpoint": str(rel)}, "summary": {"steps": result.step, "last_metrics": last}}


# -- stages ----------------------------------------------------------------------------------------------------
def data_stage(cfg: RecipeConfig, ctx: StageContext) -> dict[str, Any]:
    """Corpus (three solution styles), cold-start traces, held-out problems and the tiny BPE tokenizer."""

    d, t = cfg.data, cfg.task
    main_tokenizer = _pretrained_tokenizer(cfg)  # a chat template renders with the pretrained model's own
    corpus_template = t.template if main_tokenizer is None else t.student_template  # who pretrains on it
    corpus = build_corpus(t.spec, d.corpus_size, t.seed, d.style_mix, split="train", template=corpus_template,
                          **d.corpus_options())
    cold = cold_start_records(t.spec, d.cold_start_size, t.seed + 1, d.cold_start_mix, split="train",
                              template=t.template, tokenizer=main_tokenizer, **d.cold_start_options())
    held_out = load_task(t.spec, "test", cfg.eval.size, t.seed)
    clean = decontaminate(corpus, held_out, key="prompt", eval_key="prompt")
    cold_clean = decontaminate(cold, held_out, key="prompt", eval_key="prompt")
    for name, before, after in (("corpus", corpus, clean.records), ("cold-start set", cold, cold_clean.records)):
        if before and not after:
            raise DataError(f"data: decontamination against the held-out problems removed the whole {name} "
                            f"({len(before)} documents); the task's problems overlap its held-out ones")
    texts = [r["text"] for r in clean.records] + [r["prompt"] + r["completion"] for r in cold_clean.records]
    tokenizer = train_tokenizer(texts, vocab_size=d.vocab_size)
    tok_dir = ctx.stage_dir / "tokenizer"
    tokenizer.save_pretrained(str(tok_dir))
    atomic_write_jsonl(ctx.stage_dir / "corpus.jsonl", clean.records)
    atomic_write_jsonl(ctx.stage_dir / "cold_start.jsonl", cold_clean.records)
    atomic_write_jsonl(ctx.stage_dir / "held_out.jsonl", held_out)
    styles: dict[str, int] = {}
    for r in clean.records:
        styles[r["style"]] = styles.get(r["style"], 0) + 1
    name = ctx.stage_dir.name
    return {"artifacts": {"corpus": f"{name}/corpus.jsonl", "cold_start": f"{name}/cold_start.jsonl",
                          "held_out": f"{name}/held_out.jsonl", "tokenizer": f"{name}/tokenizer"},
            "summary": {"corpus_docs": len(clean.records), "corpus_styles": styles,
                        "cold_start_records": len(cold_clean.records), "held_out_problems": len(held_out),
                        "removed_by_decontamination": len(corpus) - len(clean.records)
                        + len(cold) - len(cold_clean.records), "vocab_size": len(tokenizer)}}


def _pretrained_tokenizer(cfg: RecipeConfig) -> Any:
    if cfg.model.init_from is None:
        return None
    return load_tokenizer(resolve_model_dir(cfg.model.init_from), required=False)


def pretrained_stage(cfg: RecipeConfig, ctx: StageContext) -> dict[str, Any]:
    """A pretrained main model (`model.init_from`: a source name or a checkpoint) is the base: nothing to
    pretrain, its directory is the checkpoint every later stage starts from."""
    directory = resolve_model_dir(cfg.model.init_from)
    return {"artifacts": {"checkpoint": str(directory.resolve())}, "summary": {"pretrained": cfg.model.init_from}}


def _pretrain(section_name: str, spec_name: str) -> Callable[[RecipeConfig, StageContext], dict[str, Any]]:
    def run(cfg: RecipeConfig, ctx: StageContext) -> dict[str, Any]:
        spec, section = getattr(cfg, spec_name), getattr(cfg, section_name)
        gate = {} if section.stop_at is None else {  # gated on the recipe's own task, in its model's template
            "stop_at__task": section.stop_at.task or cfg.task.spec, "stop_at__template": template_of(cfg, section_name)}
        section = linked(section, **_train_links(cfg, ctx), **gate,
                         data__path=str(ctx.artifact("data", "corpus")),
                         data__tokenizer=str(ctx.artifact("data", "tokenizer")),
                         model=spec.model_dump(mode="json"))
        return _trained(pretrain(section), ctx)

    return run


def _sft(section_name: str, init_stage: str, data_stage: str, data_key: str):
    def run(cfg: RecipeConfig, ctx: StageContext) -> dict[str, Any]:
        section = linked(getattr(cfg, section_name), **_train_links(cfg, ctx), model__init_from=_ckpt(ctx, init_stage),
                         data__path=str(ctx.artifact(data_stage, data_key)), data__template=None)
        return _trained(sft(section), ctx)

    return run


def _rl(section_name: str, init_stage: str):
    def run(cfg: RecipeConfig, ctx: StageContext) -> dict[str, Any]:
        section = getattr(cfg, section_name)
        section = linked(section, **_train_links(cfg, ctx), **_task_links(cfg, section_name),
                         model__init_from=_ckpt(ctx, init_stage))
        return _trained(rl(section), ctx)

    return run


def _sample_verified(cfg: RecipeConfig, ctx: StageContext, section_name: str, init_stage: str,
                     allow_empty: bool = False, **links: Any):
    out = ctx.stage_dir / "data.jsonl"
    section = linked(getattr(cfg, section_name), checkpoint=_ckpt(ctx, init_stage), out=str(out),
                     seed=cfg.seed, progress=cfg.progress, **_task_links(cfg, section_name),
                     decontaminate=[{"path": str(ctx.artifact("data", "held_out"))}], **links)
    result = sample(section)
    if not result.records and not allow_empty:
        raise R1labError(f"{section_name}: no sample passed verification ({result.counts}); "
                         "train the upstream stage longer or raise n")
    return result


def _rejection(section_name: str, init_stage: str):
    def run(cfg: RecipeConfig, ctx: StageContext) -> dict[str, Any]:
        result = _sample_verified(cfg, ctx, section_name, init_stage)
        return {"artifacts": {"data": f"{ctx.stage_dir.name}/data.jsonl"}, "summary": {"counts": result.counts}}

    return run


def _few_shot_links(section: Any, worked_path: Any) -> dict[str, Any]:
    """Few-shot examples default to the recipe's own worked solutions."""
    return {"few_shot_path": str(worked_path)} if section.few_shot and not section.few_shot_path else {}


def cold_start_data_stage(cfg: RecipeConfig, ctx: StageContext) -> dict[str, Any]:
    """The model's own verified samples (R1-Zero's, by default) plus the programmatic traces: the cold-start set."""
    assert cfg.cold_start_data is not None
    written_path = ctx.artifact("data", "cold_start")
    written = read_jsonl(Path(written_path))
    # the worked solutions double as the few-shot examples; with them, an empty sample still leaves a cold start
    result = _sample_verified(cfg, ctx, "cold_start_data", cfg.cold_start_data.source, allow_empty=bool(written),
                              **_few_shot_links(cfg.cold_start_data, written_path))
    atomic_write_jsonl(ctx.stage_dir / "cold_start.jsonl", result.records + written)
    return {"artifacts": {"data": f"{ctx.stage_dir.name}/cold_start.jsonl"},
            "summary": {"sampled_from": cfg.cold_start_data.source, "few_shot": cfg.cold_start_data.few_shot,
                        "sampled": len(result.records), "programmatic": len(written), "counts": result.counts}}


def _distill(cfg: RecipeConfig, ctx: StageContext) -> dict[str, Any]:
    section = linked(cfg.student_distill, **_train_links(cfg, ctx), model__init_from=_ckpt(ctx, "student_base"),
                     data__path=str(ctx.artifact("distill_data", "data")),
                     data__template=cfg.task.student_template)  # the teacher's problems in the student's template
    return _trained(distill(section), ctx)


def eval_stage(cfg: RecipeConfig, ctx: StageContext) -> dict[str, Any]:
    """Every checkpoint on the same held-out problems with the R1 protocol; results.json feeds the report."""

    e, rows, examples = cfg.eval, [], {}
    settings: dict[str, Any] = {}

    todo = [(stage, f"base ({cfg.model.init_from})" if stage == "base" and cfg.model.init_from else label)
            for stage, label in EVALUATED if stage in ctx.results]
    for stage, label in tqdm(todo, desc="eval", unit="checkpoint", disable=not cfg.progress):
        common = dict(n=e.n, k=e.k, temperature=e.temperature, top_p=e.top_p, max_new_tokens=e.max_new_tokens,
                      template=template_of(cfg, stage), split="test", size=e.size, seed=cfg.task.seed,
                      group_by=e.group_by, fallbacks=e.fallbacks)
        res = evaluate(_ckpt(ctx, stage), cfg.task.spec, out_dir=ctx.stage_dir / stage, name=label, **common)
        settings = settings or dict(res["settings"])  # the main model's; a student's template is added below
        if res["settings"].get("template") != settings.get("template"):
            settings["student_template"] = res["settings"].get("template")
        row = {"name": label, "stage": stage, **res["overall"]}
        if res.get("groups"):
            row["groups"] = {g: m["pass@1"] for g, m in res["groups"].items()}
            row["group_lengths"] = {g: m["mean_length"] for g, m in res["groups"].items()}
        for i, spec in enumerate(e.extra_tasks):
            extra = evaluate(_ckpt(ctx, stage), spec, out_dir=ctx.stage_dir / stage / f"extra{i}", name=label, **common)
            row.setdefault("extra", {})[spec] = extra["overall"]["pass@1"]
        rows.append(row)
        examples[label] = [{"prompt": x.get("prompt", ""), "completion": x.get("completion", ""),
                            "correct": bool(x.get("correct")), "metadata": x.get("metadata") or {}}
                           for x in res.get("examples", [])[: e.examples]]
    atomic_write_json(ctx.stage_dir / "results.json", {"settings": settings, "checkpoints": rows})
    atomic_write_json(ctx.stage_dir / "examples.json", examples)
    by_stage = {r["stage"]: r for r in rows}
    summary = {**headline(by_stage), **thinking_headline(ctx.run_dir, by_stage)}
    steps = ctx.results.get("base", {}).get("summary", {}).get("steps")
    if steps is not None:  # pretrained here: with a quality gate the step count differs by seed
        summary["base_pretrain_steps"] = steps
    return {"artifacts": {"results": f"{ctx.stage_dir.name}/results.json"}, "summary": summary}


def headline(by_stage: dict[str, dict]) -> dict[str, Any]:
    """The R1 findings in numbers, each computed from two evaluated checkpoints (None when one is missing)."""

    def diff(a: str, b: str, key: str = "pass@1", scale: float = 100.0) -> float | None:
        if a in by_stage and b in by_stage and by_stage[a].get(key) is not None and by_stage[b].get(key) is not None:
            return round(scale * (by_stage[a][key] - by_stage[b][key]), 2)
        return None

    def get(stage: str, key: str) -> Any:
        return by_stage.get(stage, {}).get(key)

    return {
        "rl_gain_points": diff("r1_rl", "cold_start"),
        "r1_zero_gain_points": diff("r1_zero", "base"),
        "second_rl_gain_points": diff("r1", "r1_sft"),
        "distill_minus_rl_points": diff("student_distill", "student_rl"),
        "mean_length_before_rl": get("cold_start", "mean_length"),
        "mean_length_after_rl": get("r1_rl", "mean_length"),
        "r1_zero_mean_length_before": get("base", "mean_length"),
        "r1_zero_mean_length_after": get("r1_zero", "mean_length"),
    }


# (checkpoint a stage started from, the stage): the drops `stage_drop_points` watches. R1-Zero and the RL-only
# student are the baselines RL is compared with, not steps of the R1 path, so they are not in it.
STAGE_STARTS = [("base", "cold_start"), ("cold_start", "r1_rl"), ("base", "r1_sft"), ("r1_sft", "r1"),
                ("student_base", "student_distill")]
WINDOW = 0.1  # first and last 10% of an RL stage's steps


def window_means(rows: list[dict], key: str) -> tuple[float, float] | None:
    """Mean of `key` over the first and over the last 10% of an RL stage's logged steps."""
    values = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    if len(values) < 2:
        return None
    k = max(1, round(WINDOW * len(values)))
    return sum(values[:k]) / k, sum(values[-k:]) / k


def _length_ratio(row: dict | None) -> float | None:
    """Mean length on the hardest difficulty bucket over the easiest, from a checkpoint's eval groups."""
    lengths = {float(g): v for g, v in (row or {}).get("group_lengths", {}).items() if isinstance(v, (int, float))}
    if len(lengths) < 2 or lengths[min(lengths)] <= 0:
        return None
    return lengths[max(lengths)] / lengths[min(lengths)]


def thinking_headline(run_dir: Path, by_stage: dict[str, dict]) -> dict[str, Any]:
    """Issue-15 figures: the worst stage drop, the whole path's gain, and R1-Zero's thinking-time and aha trends
    (each None where the run lacks what it needs; raw window means beside the ratios)."""
    drops = [100 * (by_stage[a]["pass@1"] - by_stage[b]["pass@1"]) for a, b in STAGE_STARTS
             if a in by_stage and b in by_stage]
    out: dict[str, Any] = {
        "stage_drop_points": round(max(drops), 2) if drops else None,
        "r1_final_minus_base_points": (round(100 * (by_stage["r1"]["pass@1"] - by_stage["base"]["pass@1"]), 2)
                                       if "r1" in by_stage and "base" in by_stage else None),
    }
    rows = read_jsonl(run_dir / "r1_zero" / "metrics.jsonl")
    length = window_means(rows, "completions/mean_length_correct")
    out["r1_zero_length_growth"] = round(length[1] / length[0] - 1, 3) if length and length[0] > 0 else None
    corr = window_means(rows, "completions/effective_corrections")
    out["effective_corrections_first_last"] = [round(corr[0], 4), round(corr[1], 4)] if corr else None
    out["effective_correction_growth"] = round(corr[1] / corr[0], 3) if corr and corr[0] > 0 else None
    first = next((r for r in rows if isinstance(r.get("completions/reflection_rate"), (int, float))), None)
    out["base_reflection_rate_step0"] = round(first["completions/reflection_rate"], 4) if first else None  # "aha at epoch 0"
    # the mechanism: does a check pay under the base's own sampling, and does RL keep checking (entry J)
    acc_checked, acc_worked = (window_means(rows, f"completions/style/{s}/accuracy") for s in ("checked", "worked"))
    out["checked_minus_worked_points"] = (round(100 * (acc_checked[0] - acc_worked[0]), 2)
                                          if acc_checked and acc_worked else None)
    checked = window_means(rows, "completions/style/checked/share")
    out["r1_zero_checked_share_change_points"] = round(100 * (checked[1] - checked[0]), 2) if checked else None
    base, zero = _length_ratio(by_stage.get("base")), _length_ratio(by_stage.get("r1_zero"))
    out["adaptive_thinking_gain"] = round(zero / base, 3) if base and zero else None
    return out


def stages(cfg: RecipeConfig) -> list[Stage]:
    def bind(fn):
        return lambda ctx: fn(cfg, ctx)

    if cfg.cold_start_data is None:
        cold_start = [Stage("cold_start", bind(_sft("cold_start", "base", "data", "cold_start")), ("base",),
                            "cold-start SFT on chain-of-thought")]
    else:
        source = cfg.cold_start_data.source
        cold_start = [Stage("cold_start_data", bind(cold_start_data_stage), (source,),
                            f"verified, well-formed samples of {source} for the cold start"),
                      Stage("cold_start", bind(_sft("cold_start", "base", "cold_start_data", "data")),
                            ("base", "cold_start_data"), "cold-start SFT on the model's own and written traces")]
    everything = [
        Stage("data", bind(data_stage), title="synthetic corpus, cold-start traces, held-out set, tokenizer"),
        Stage("base", bind(_pretrain("base", "model")), ("data",), "pretrain the V3 base (MLA + MoE + MTP)")
        if cfg.model.init_from is None else
        Stage("base", bind(pretrained_stage), ("data",), f"the pretrained base: {cfg.model.init_from}"),
        Stage("r1_zero", bind(_rl("r1_zero", "base")), ("base",), "R1-Zero: RL directly on the base"),
        *cold_start,
        Stage("r1_rl", bind(_rl("r1_rl", "cold_start")), ("cold_start",), "reasoning RL (accuracy + format + language)"),
        Stage("rejection", bind(_rejection("rejection", "r1_rl")), ("r1_rl",), "rejection sampling from the RL model"),
        Stage("r1_sft", bind(_sft("r1_sft", "base", "rejection", "data")), ("rejection",),
              "SFT of the base on the kept samples"),
        Stage("r1", bind(_rl("r1", "r1_sft")), ("r1_sft",), "second RL stage → R1"),
        Stage("distill_data", bind(_rejection("distill_data", "r1")), ("r1",), "verified R1 traces for distillation"),
        Stage("student_base", bind(_pretrain("student_base", "student")), ("data",), "pretrain the dense student"),
        Stage("student_distill", bind(_distill), ("student_base", "distill_data"), "distil R1 into the student"),
        Stage("student_rl", bind(_rl("student_rl", "student_base")), ("student_base",), "the same student by RL alone"),
        Stage("eval", bind(eval_stage), ("r1", "student_distill", "student_rl"), "evaluate every checkpoint"),
    ]
    return select_stages(everything, cfg.stages)


def select_stages(everything: list[Stage], chosen: list[str] | None) -> list[Stage]:
    """The recipe's stages, or the chosen subset in recipe order; `eval` then evaluates the checkpoints that run.
    A chosen stage whose inputs are not chosen is a one-line error (from the pipeline's own check)."""
    if chosen is None:
        return everything
    known = [s.name for s in everything]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise ConfigError(f"stages: unknown stage(s) {', '.join(unknown)}; the recipe's stages are {', '.join(known)}")
    picked = [s for s in everything if s.name in chosen]
    before_eval = tuple(s.name for s in picked if s.name != "eval")
    return [Stage(s.name, s.run, before_eval, s.title) if s.name == "eval" else s for s in picked]
