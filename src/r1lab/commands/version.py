"""`r1lab version`: versions of r1lab and the libraries that shape its numbers."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print r1lab, torch and transformers versions."""
        import torch
        import transformers

        import r1lab

        typer.echo(f"r1lab {r1lab.__version__}  torch {torch.__version__}  transformers {transformers.__version__}")
