"""`r1lab pretrain | sft | rl | sample | distill CONFIG [--resume] [key=value ...]`: run one training stage.

Each command loads CONFIG (YAML) into the stage's typed config, applies dotted overrides
(`train.lr=3e-4 data.batch_size=4`), and calls the stage entry point. Without `train.out_dir` in the
config, a stage writes to `runs/<config name>/<stage>/`. `--resume` continues from that directory's
checkpoint. A bad config, key or file is one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Optional

import typer

from r1lab.config import apply_overrides, read_yaml, validate
from r1lab.errors import ConfigError

# command -> (module, config class, entry point, help); modules are imported when their command runs (start-up time)
STAGES: dict[str, tuple[str, str, str, str]] = {
    "pretrain": ("r1lab.train.stages.pretrain", "PretrainConfig", "pretrain",
                 "Pretrain an r1lab model: next-token + MTP + balance loss on a text corpus."),
    "sft": ("r1lab.train.stages.sft", "SFTConfig", "sft",
            "Supervised fine-tuning on prompt/completion JSONL (prompt tokens masked)."),
    "rl": ("r1lab.train.rl", "RLConfig", "rl",
           "Reinforcement learning (GRPO family / PPO) with verifiable rewards."),
    "sample": ("r1lab.sampling.rejection", "RejectionConfig", "sample",
               "Rejection sampling: keep verified samples as an SFT JSONL with provenance."),
    "distill": ("r1lab.train.stages.distill", "DistillConfig", "distill",
                "Distill: SFT of a student on teacher traces, optional logit KL."),
}


def load_stage_config(command: str, config: Path, overrides: list[str], resume: bool) -> tuple[Any, Any]:
    """(validated config, entry function) for `command`."""
    module_name, class_name, entry_name, _ = STAGES[command]
    module = importlib.import_module(module_name)
    config_cls, entry = getattr(module, class_name), getattr(module, entry_name)
    data = read_yaml(config)
    apply_overrides(data, overrides)
    if "train" in config_cls.model_fields:
        train = data.setdefault("train", {})
        if not isinstance(train, dict):
            raise ConfigError(f"{config}: key 'train' must be a mapping")
        train.setdefault("out_dir", str(Path("runs") / config.stem / command))
        if resume:
            train["resume"] = True
    elif resume:
        if "resume" not in config_cls.model_fields:
            raise ConfigError(f"r1lab {command}: --resume is not supported (this stage keeps no checkpoint)")
        data["resume"] = True
    return validate(config_cls, data, str(config)), entry


def _summary(command: str, result: Any) -> str:
    if hasattr(result, "step") and hasattr(result, "checkpoint"):
        loss = result.metrics.get("loss") if isinstance(result.metrics, dict) else None
        loss_s = f", last loss {loss:.4g}" if isinstance(loss, float) else ""
        return f"{command}: {result.step} steps{loss_s}; checkpoint {result.checkpoint}"
    return f"{command}: done ({result})" if result is not None else f"{command}: done"


def _make_command(app: typer.Typer, command: str, help_text: str) -> None:
    def run_stage(
        config: Path = typer.Argument(..., help="Stage config (YAML)."),
        overrides: Optional[list[str]] = typer.Argument(None, help="Dotted overrides, e.g. train.lr=3e-4"),
        resume: bool = typer.Option(False, "--resume", help="Continue from the stage's last checkpoint."),
    ) -> None:
        cfg, entry = load_stage_config(command, config, list(overrides or []), resume)
        typer.echo(_summary(command, entry(cfg)))

    run_stage.__doc__ = help_text
    app.command(name=command, help=help_text)(run_stage)


def register(app: typer.Typer) -> None:
    for command, (_, _, _, help_text) in STAGES.items():
        _make_command(app, command, help_text)
