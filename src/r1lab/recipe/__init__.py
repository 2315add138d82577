"""The DeepSeek-R1 recipe as a pipeline of typed stages (`r1lab run`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from r1lab.atomic import atomic_write_json
from r1lab.config import load_config
from r1lab.errors import R1labError
from r1lab.lock import directory_lock
from r1lab.model import ModelConfig
from r1lab.model.accounting import param_counts
from r1lab.pipeline import Pipeline, stage_errors
from r1lab.recipe.config import RecipeConfig
from r1lab.recipe.stages import stages
from r1lab.report import write_report

__all__ = ["RecipeConfig", "build_pipeline", "check_hardware", "run_recipe"]

CPU_PARAM_LIMIT = 2e9  # above this a CPU would take months per step; refuse instead of starting


def check_hardware(cfg: RecipeConfig, source: str) -> None:
    """Refuse, with a clear message, a model far too large for the machine (e.g. the 671B paper config on CPU)."""
    import torch  # CLI start-up time


    if cfg.model.init_from is not None or torch.cuda.is_available():
        return
    mc = ModelConfig.from_preset(cfg.model.preset, **cfg.model.overrides)
    total = param_counts(mc)["total_params"]
    if total > CPU_PARAM_LIMIT:
        raise R1labError(f"{source}: model '{cfg.model.preset}' has {total / 1e9:.0f}B parameters and cannot be "
                         "trained on a CPU; run it on a GPU cluster (see docs/DISTRIBUTED.md) or use configs/tiny.yaml")


def build_pipeline(cfg: RecipeConfig, log=print) -> Pipeline:
    return Pipeline(stages(cfg), log=log)


def run_recipe(config: str | Path, out: str | Path | None = None, *, resume: bool = False,
               from_stage: str | None = None, overrides: Sequence[str] = (), log=print) -> Path:
    """Run every stage not yet done, then write the report; returns the run directory."""

    cfg = load_config(RecipeConfig, config, overrides)
    check_hardware(cfg, str(config))
    run_dir = Path(out) if out is not None else Path("runs") / cfg.name
    with directory_lock(run_dir):  # a second run on the same directory refuses at once
        atomic_write_json(run_dir / "config.json", cfg.model_dump(mode="json"))
        pipeline = build_pipeline(cfg, log=log)
        atomic_write_json(run_dir / "stages.json", pipeline.names())
        results = pipeline.run(run_dir, resume=resume, from_stage=from_stage)
        summary = dict(results.get("eval", {}).get("summary", {}))
        summary["stage_seconds"] = {k: v.get("seconds") for k, v in results.items()}
        atomic_write_json(run_dir / "summary.json", summary)
        with stage_errors("report"):
            md, html = write_report(run_dir)
    log(f"report: {md} and {html}")
    log(json.dumps({k: v for k, v in summary.items() if k != "stage_seconds"}, indent=2))
    return run_dir
