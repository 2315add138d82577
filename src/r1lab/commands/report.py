"""`r1lab report RUN_DIR`: (re)build report.md and report.html from a run directory's files."""

from __future__ import annotations

from pathlib import Path

import typer

from r1lab.errors import R1labError


def register(app: typer.Typer) -> None:
    @app.command()
    def report(run_dir: Path = typer.Argument(..., help="A run directory written by `r1lab run`.")) -> None:
        """Write report.md and a self-contained report.html (tables + PNG plots) for a run."""
        from r1lab.report import write_report

        if not run_dir.is_dir():
            raise R1labError(f"{run_dir}: run directory not found")
        md, page = write_report(run_dir)
        typer.echo(f"wrote {md} and {page}")
