"""CLI sub-commands: one module per area, each with `register(app: typer.Typer)`."""
