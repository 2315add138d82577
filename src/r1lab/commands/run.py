"""`r1lab run [CONFIG]`: the whole DeepSeek-R1 recipe on the embedded tiny default, then the report."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

DEFAULT_CONFIG = Path("configs/tiny.yaml")


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        config: Path = typer.Argument(DEFAULT_CONFIG, help="Recipe YAML (default: configs/tiny.yaml)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: runs/<config name>)."),
        resume: bool = typer.Option(False, "--resume", help="Continue a killed run inside its unfinished stage."),
        from_stage: Optional[str] = typer.Option(None, "--from", help="Rerun from this stage (and every later one)."),
        overrides: Optional[List[str]] = typer.Argument(None, help="key.sub=value overrides, e.g. eval.n=4"),
    ) -> None:
        """Run the R1 recipe: base → R1-Zero; cold start → RL → rejection SFT → RL; distillation; eval; report."""
        from r1lab.recipe import run_recipe

        run_recipe(config, out, resume=resume, from_stage=from_stage, overrides=overrides or [])
