"""`r1lab reward score FILE.jsonl [--rewards accuracy,format]` and `r1lab reward list`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from r1lab.errors import DataError
from r1lab.jsonl import read_jsonl

reward_app = typer.Typer(help="Rule-based rewards (accuracy, format, language, length, code).", no_args_is_help=True)


def read_scored_records(path: Path) -> tuple[list[tuple[int, dict]], int]:
    """(line number, record) for every non-blank line, and how many blank lines were skipped.

    Each record needs a `completion` (text or message list); its other fields are reward columns."""
    data = read_jsonl(path)
    for lineno, record in data.records:
        if "completion" not in record:
            raise DataError(f"{path}:{lineno}: no 'completion' field (keys: {', '.join(sorted(record)) or 'none'})")
    return data.records, data.blank


def score_records(records: list[dict], names: list[str]) -> dict[str, list[Any]]:
    """Each reward's values over the records; every field but `completion` is passed as a column."""
    from r1lab.rewards import combine_rewards

    columns: dict[str, list[Any]] = {}
    keys = sorted({k for r in records for k in r if k != "completion"})
    for key in keys:
        columns[key] = [r.get(key) for r in records]
    breakdown = combine_rewards({name: 1.0 for name in names}).score([r["completion"] for r in records], **columns)
    return breakdown.components


def _preview(completion: Any, width: int = 60) -> str:
    from r1lab.rewards import completion_text

    text = completion_text(completion).replace("\n", "⏎")
    return text if len(text) <= width else text[: width - 1] + "…"


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


@reward_app.command("score")
def score(
    file: Path = typer.Argument(..., help="JSONL: one object per line with 'completion' and columns (answer, tests, prefill, task, lang, ...)"),
    rewards: str = typer.Option("accuracy,format", "--rewards", help="comma-separated reward names (r1lab reward list)"),
    limit: int = typer.Option(20, "--limit", help="rows to show (means cover every line)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line: line number and scores"),
) -> None:
    """Score the completions of a JSONL file and print a table (means over all lines at the bottom)."""
    from rich.console import Console
    from rich.table import Table

    from r1lab.rewards import get_reward, timeout_counts

    names = [n.strip() for n in rewards.split(",") if n.strip()]
    if not names:
        raise DataError("--rewards: no reward named")
    for name in names:
        get_reward(name)  # unknown names fail here with the list of known ones
    numbered, blank = read_scored_records(file)
    before = timeout_counts()
    values = score_records([r for _, r in numbered], names) if numbered else {n: [] for n in names}
    timeouts = {k: v - before.get(k, 0) for k, v in timeout_counts().items() if v - before.get(k, 0)}

    if as_json:
        for i, (lineno, _) in enumerate(numbered):
            typer.echo(json.dumps({"line": lineno, **{n: values[n][i] for n in names}}))
        return
    table = Table(title=f"{file} — {len(numbered)} completion(s)")
    table.add_column("line", justify="right")
    table.add_column("completion")
    for name in names:
        table.add_column(name, justify="right")
    for i, (lineno, record) in enumerate(numbered[:limit]):
        table.add_row(str(lineno), _preview(record["completion"]), *[_fmt(values[n][i]) for n in names])
    means = []
    for name in names:
        applicable = [v for v in values[name] if v is not None]
        means.append(_fmt(sum(applicable) / len(applicable)) if applicable else "–")
    table.add_section()
    table.add_row("", "[bold]mean (applicable rows)[/bold]", *means)
    console = Console()
    console.print(table)
    if len(numbered) > limit:
        console.print(f"({len(numbered) - limit} more row(s) not shown; means cover all)")
    if blank:
        console.print(f"skipped {blank} blank line(s)")
    if timeouts:
        console.print("time-outs (scored 0): " + ", ".join(f"{k}={v}" for k, v in sorted(timeouts.items())))


@reward_app.command("list")
def list_command() -> None:
    """Names of the registered rewards."""
    from r1lab.rewards import list_rewards

    for name in list_rewards():
        typer.echo(name)


def register(app: typer.Typer) -> None:
    app.add_typer(reward_app, name="reward")
