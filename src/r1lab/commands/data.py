"""`r1lab data preview TASK` and `r1lab data build CONFIG -o out.jsonl`."""

from __future__ import annotations

import json
import random
from typing import List, Optional

import typer

data_app = typer.Typer(help="Tasks, prompt formats, corpora and dataset hygiene.", no_args_is_help=True)


@data_app.command("preview")
def preview(
    task: str = typer.Argument(..., help="task name, e.g. 'arith?operands=4', 'rg:countdown', 'file:x.jsonl'"),
    n: int = typer.Option(5, "--n", help="how many records"),
    split: str = typer.Option("train", "--split", help="train | validation | test (eval)"),
    seed: int = typer.Option(0, "--seed"),
    template: Optional[str] = typer.Option(None, "--template", help="render prompts with r1 | plain"),
    style: Optional[str] = typer.Option(None, "--style", help="synthetic tasks: show a worked completion "
                                        "(direct | cot | reflect)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON record per line"),
) -> None:
    """Show a few records of a task split (and, for synthetic tasks, worked completions)."""
    from r1lab.data import get_task, get_template, load_task
    from r1lab.data.records import split_seed
    from r1lab.data.traces import STYLES, write_trace

    records = load_task(task, split, n, seed)
    t = get_task(task)
    if style is not None:
        from r1lab.errors import DataError

        if not t.has_traces:
            raise DataError(f"task {t.name!r} has no worked solutions; --style needs arith or column_add")
        if style not in STYLES:
            raise DataError(f"--style: expected one of {', '.join(STYLES)}, got {style!r}")
    tpl = get_template(template) if template else None
    rng = random.Random(split_seed(seed, split, salt="preview"))
    for rec in records:
        shown = dict(rec)
        if tpl is not None:
            shown["rendered_prompt"] = tpl.render(rec["prompt"])
        if style is not None:
            shown["completion"] = write_trace(t, rec, style, rng)["completion"]
        if as_json:
            typer.echo(json.dumps(shown, ensure_ascii=False))
            continue
        typer.echo(f"── {rec['id']}  answer={rec['answer']!r}")
        typer.echo(shown.get("rendered_prompt", rec["prompt"]))
        if "completion" in shown:
            typer.echo(shown["completion"])
    if not as_json:
        typer.echo(f"{len(records)} record(s) of {t.name} [{split}, seed {seed}]")


@data_app.command("build")
def build(
    config: str = typer.Argument(..., help="YAML data-build config (see r1lab.data.build.DataBuildConfig)"),
    out: str = typer.Option(..., "-o", "--out", help="output JSONL (written atomically)"),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides, e.g. size=200"),
) -> None:
    """Build a dataset (task records, pretraining corpus or cold-start SFT data) and print the counts."""
    from r1lab.config import load_config
    from r1lab.data.build import DataBuildConfig, write_dataset

    cfg = load_config(DataBuildConfig, config, overrides or [])
    counts = write_dataset(cfg, out)
    width = max(len(k) for k in counts)
    for key, value in counts.items():
        typer.echo(f"{key:<{width}}  {value}")
    typer.echo(f"wrote {counts['written']} record(s) to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
