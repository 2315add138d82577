"""`r1lab sweep CONFIG AXIS=v1,v2 [AXIS2=...] [--jobs N] [--out DIR]`: the recipe over a grid, one comparison report."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def sweep(
        config: Path = typer.Argument(..., help="Recipe YAML, e.g. configs/tiny.yaml."),
        axes: List[str] = typer.Argument(..., help="KEY=v1,v2,... per axis, e.g. seed=0,1,2,3,4 r1_zero.preset=r1,dr_grpo"),
        out: Optional[Path] = typer.Option(None, "--out", help="Sweep directory (default: runs/sweep-<config name>)."),
        jobs: int = typer.Option(1, "--jobs", help="Grid points run at once, each its own process."),
        overrides: Optional[List[str]] = typer.Option(None, "--set", help="key=value applied to every point, repeatable"),
    ) -> None:
        """Run the recipe at every grid point (resumable: run it again to continue), then write sweep.md/.html with
        every checkpoint's pass@1 and every headline figure as mean ± std, and the RL curves of all runs overlaid."""
        from r1lab.recipe.sweep import run_sweep

        run_sweep(config, axes, out, jobs=jobs, overrides=overrides or [])
