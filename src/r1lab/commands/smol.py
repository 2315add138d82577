"""`r1lab smol curve CONFIG`: GRPO on SmolLM2 (or any RL config) with held-out pass@1 measured along the way."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    smol = typer.Typer(help="SmolLM2 recipe: GRPO with a held-out curve, cross-family distillation.")
    app.add_typer(smol, name="smol")

    @smol.command("curve")
    def curve(
        config: Path = typer.Argument(..., help="RL config (YAML), e.g. configs/smollm2_grpo.yaml"),
        overrides: Optional[list[str]] = typer.Argument(None, help="Dotted overrides, e.g. train.max_steps=40"),
        every: int = typer.Option(20, "--every", help="optimizer steps between held-out evaluations"),
        eval_size: int = typer.Option(37, "--eval-size", help="held-out problems per evaluation"),
        eval_n: int = typer.Option(8, "--eval-n", help="samples per problem (pass@1 = mean correctness)"),
    ) -> None:
        """Train with `r1lab rl` semantics and write <out_dir>/curve.json (pass@1 before and every --every steps)."""
        from r1lab.commands.train import load_stage_config
        from r1lab.recipe.smollm2 import rl_with_curve

        cfg, _ = load_stage_config("rl", config, list(overrides or []), resume=False)
        rl_with_curve(cfg, every, eval_settings={"size": eval_size, "n": eval_n}, log=typer.echo)

    @smol.command("distill")
    def distill_cmd(
        teacher: str = typer.Argument(..., help="GRPO-trained SmolLM2 checkpoint dir (e.g. runs/smollm2/rl/checkpoint)"),
        out: Path = typer.Option(Path("runs/smollm2/distill"), "--out", help="output directory"),
        n: int = typer.Option(8, "--n", help="teacher samples per training prompt"),
        sft_steps: int = typer.Option(300, "--sft-steps"),
        rl_steps: int = typer.Option(150, "--rl-steps"),
    ) -> None:
        """Verified SmolLM2 traces distilled into a tiny r1lab student vs the same student trained by RL alone."""
        from r1lab.recipe.smollm2 import distill_vs_rl

        distill_vs_rl(teacher, str(out), n=n, sft_steps=sft_steps, rl_steps=rl_steps, log=typer.echo)
