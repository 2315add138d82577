"""The run report: `report.md` + a self-contained `report.html` with PNG plots, all from files the run wrote.

Inputs (conventions of `r1lab run`): each stage directory may hold `metrics.jsonl` (one JSON object per
step; RL stages log TRL-style names) and `done.json`; the evaluation stage writes `eval/results.json`
(`{"settings": {...}, "checkpoints": [{"name", "pass@1", "pass@1_ci", "maj@k", "k", "n", ...}]}`) and
`eval/examples.json` (`{checkpoint: [{"prompt", "completion", "correct", "metadata"}]}`). Nothing here invents a
number: a plot or table row without data is left out and the report says so. An example whose problem is a proof
problem is shown with each line of its proof checked (`r1lab.logic`).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from r1lab.atomic import atomic_write_text, raise_if_disk_full, unique_temp_path
from r1lab.data.answer import answer_block
from r1lab.data.completion_metrics import SOLUTION_STYLES
from r1lab.errors import R1labError
from r1lab.logic import FormulaError, check_proof

# Plot name -> candidate metric keys (first present wins), in the order TRL / r1lab name them.
CURVES: dict[str, tuple[str, ...]] = {
    "reward": ("reward", "reward/mean", "rewards/total/mean"),
    "accuracy": ("rewards/accuracy/mean", "accuracy"),
    "completion_length": ("completions/mean_length", "completion_length"),
    "reflection_rate": ("completions/reflection_rate", "reflection_rate"),
    "kl": ("kl", "kl/mean"),
    "entropy": ("entropy", "entropy/mean"),
    "held_out": ("eval/pass@1",),
    "length_correct": ("completions/mean_length_correct",),
    "length_wrong": ("completions/mean_length_wrong",),
    "effective": ("completions/effective_corrections",),
    "empty": ("completions/empty_reflections",),
    **{f"style_{style}": (f"completions/style/{style}/share",) for style in SOLUTION_STYLES},
}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a killed run
    return rows


def curve(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> tuple[list[float], list[float]] | None:
    for key in keys:
        pts = [(r.get("step", i), r[key]) for i, r in enumerate(rows) if isinstance(r.get(key), (int, float))]
        if pts:
            return [p[0] for p in pts], [float(p[1]) for p in pts]
    return None


def rl_stages(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Stage name -> metric rows, for stages whose metrics carry a reward (i.e. RL stages), in run order."""
    out = {}
    for d in sorted((p for p in run_dir.iterdir() if p.is_dir()), key=_stage_order(run_dir)):
        rows = read_jsonl(d / "metrics.jsonl")
        if rows and curve(rows, CURVES["reward"]):
            out[d.name] = rows
    return out


def _stage_order(run_dir: Path):
    order = {}
    manifest = run_dir / "stages.json"
    if manifest.exists():
        order = {n: i for i, n in enumerate(json.loads(manifest.read_text()))}
    return lambda p: (order.get(p.name, 1_000), p.name)


def save_figure(fig, path: Path) -> bool:
    """Write a figure atomically (temp file + rename) and close it."""
    import matplotlib.pyplot as plt  # only when a report is drawn

    fig.tight_layout()
    tmp = unique_temp_path(path)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        tmp.replace(path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        raise_if_disk_full(e, path)
        raise
    finally:
        plt.close(fig)
    return True


def _plot(path: Path, title: str, panels: list[tuple[str, dict[str, tuple[list[float], list[float]]]]]) -> bool:
    panels = [(y, c) for y, c in panels if c]
    if not panels:
        return False
    import matplotlib  # only when a report is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # only when a report is drawn
    from matplotlib.ticker import MaxNLocator  # only when a report is drawn

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.6), squeeze=False)
    for ax, (ylabel, curves) in zip(axes[0], panels):
        for label, (x, y) in curves.items():
            ax.plot(x, y, label=label, marker="." if len(x) < 40 else None)
        ax.set_xlabel("RL step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def _collect(stages: dict[str, list[dict]], name: str) -> dict[str, tuple[list[float], list[float]]]:
    return {s: c for s, rows in stages.items() if (c := curve(rows, CURVES[name]))}


def _expert_load_plot(run_dir: Path, path: Path) -> bool:
    """Per-layer expert load (share of routed tokens) from the last pretraining step that logged it."""
    loads: dict[str, list[float]] = {}
    for d in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        for row in reversed(read_jsonl(d / "metrics.jsonl")):
            found = {k: v for k, v in row.items() if k.startswith("moe/load/") and isinstance(v, list)}
            if found:
                loads = {f"{d.name} {k.removeprefix('moe/load/')}": v for k, v in sorted(found.items())}
                break
        if loads:
            break
    if not loads:
        return False
    import matplotlib  # only when a report is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # only when a report is drawn
    import numpy as np  # only when a report is drawn

    names = list(loads)
    mat = np.array([np.asarray(v, dtype=float) / max(sum(v), 1e-9) for v in loads.values()])
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(names)))
    im = ax.imshow(mat, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("routed expert")
    ax.set_title("MoE expert load (share of routed tokens)")
    fig.colorbar(im, ax=ax)
    return save_figure(fig, path)


# Headline figures: key -> (figure, how to print it, the two things it compares). Unknown keys are listed as they are.
HEADLINE: dict[str, tuple[str, str, str]] = {
    "r1_final_minus_base_points": ("Whole R1 path", "{:+.1f} points", "R1 (second RL) vs base, held-out pass@1"),
    "r1_zero_gain_points": ("R1-Zero gain", "{:+.1f} points", "R1-Zero vs base"),
    "rl_gain_points": ("Reasoning-RL gain", "{:+.1f} points", "reasoning RL vs cold-start SFT"),
    "second_rl_gain_points": ("Second-RL gain", "{:+.1f} points", "R1 vs rejection-sampling SFT"),
    "distill_minus_rl_points": ("Distillation vs RL (student)", "{:+.1f} points", "student distilled vs student RL only"),
    "stage_drop_points": ("Largest loss of a stage", "{:.1f} points",
                          "worst of: cold start, reasoning RL, rejection SFT, R1, distilled student vs their start "
                          "(negative: every one of them gained at least that much)"),
    "r1_zero_length_growth": ("Thinking time under R1-Zero", "{:+.0%}",
                              "mean length of correct completions, last vs first 10% of RL steps"),
    "effective_correction_growth": ("Effective self-corrections under R1-Zero", "{:.2f}x",
                                    "per completion, last vs first 10% of RL steps"),
    "effective_corrections_first_last": ("Effective self-corrections per completion", "{0[0]:.3f} -> {0[1]:.3f}",
                                         "R1-Zero, first vs last 10% of RL steps"),
    "base_reflection_rate_step0": ("Reflection rate of the base's own samples", "{:.1%}",
                                   "R1-Zero's first RL step (the 'aha' already at step 0)"),
    "checked_minus_worked_points": ("Does a check pay?", "{:+.1f} points",
                                    "accuracy of checked minus worked completions, R1-Zero's first 10% of steps "
                                    "(the base's own samples)"),
    "r1_zero_checked_share_change_points": ("Checked completions under R1-Zero", "{:+.1f} points",
                                            "share of completions with a check, last vs first 10% of RL steps"),
    "adaptive_thinking_gain": ("Adaptive thinking", "{:.2f}x",
                               "hardest/easiest-bucket length ratio, R1-Zero over base"),
    "base_pretrain_steps": ("Base pretraining", "{} steps", "optimizer steps until the base met its quality gate "
                            "(base.stop_at) or its budget"),
    "mean_length_before_rl": ("Completion length before reasoning RL", "{:.1f} tokens", "cold-start SFT"),
    "mean_length_after_rl": ("Completion length after reasoning RL", "{:.1f} tokens", "reasoning RL"),
    "r1_zero_mean_length_before": ("Completion length before R1-Zero", "{:.1f} tokens", "base"),
    "r1_zero_mean_length_after": ("Completion length after R1-Zero", "{:.1f} tokens", "R1-Zero"),
}


def headline_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value with its unit, what it compares) for every headline figure except stage times."""
    rows = []
    for key, value in summary.items():
        if key == "stage_seconds":
            continue
        label, fmt, compares = HEADLINE.get(key, (key, "{}", ""))
        if value is None:
            text = "– (not measurable in this run)"
        else:
            try:
                text = fmt.format(value)
            except (TypeError, ValueError, IndexError):
                text = str(value)
        rows.append((label, text, compares))
    return rows


def _stage_times_plot(seconds: dict[str, Any], path: Path) -> bool:
    times = {k: float(v) for k, v in seconds.items() if isinstance(v, (int, float))}
    if not times:
        return False
    import matplotlib  # only when a report is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # only when a report is drawn

    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(times) + 0.9))
    names = list(times)[::-1]
    ax.barh(names, [times[n] / 60 for n in names], color="#4a7ab5")
    ax.set_xlabel("minutes")
    ax.set_title(f"Stage times (total {sum(times.values()) / 60:.1f} min)")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


def first_corrections(run_dir: Path) -> list[tuple[str, dict]]:
    """(RL stage, its aha.json) for every RL stage that logged an effective self-correction, in run order."""
    out = []
    for d in sorted((p for p in run_dir.iterdir() if p.is_dir()), key=_stage_order(run_dir)):
        aha = d / "aha.json"
        if aha.exists():
            try:
                out.append((d.name, json.loads(aha.read_text(encoding="utf-8"))))
            except ValueError:
                continue
    return out


def _fmt(x: Any, pct: bool = True) -> str:
    if not isinstance(x, (int, float)):
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.1f}"


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    plots_dir = run_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    stages = rl_stages(run_dir)
    plots: list[tuple[str, Path]] = []

    def add(title: str, fname: str, ok: bool) -> None:
        if ok:
            plots.append((title, plots_dir / fname))

    add("Reward and accuracy per RL step", "reward_accuracy.png",
        _plot(plots_dir / "reward_accuracy.png", "Reward and accuracy per RL step",
              [("mean reward", _collect(stages, "reward")), ("accuracy", _collect(stages, "accuracy"))]))
    add("Mean completion length per RL step (thinking time)", "completion_length.png",
        _plot(plots_dir / "completion_length.png", "Mean completion length (tokens) per RL step",
              [("tokens", _collect(stages, "completion_length"))]))
    add("Held-out pass@1 during RL (held_out.every)", "held_out.png",
        _plot(plots_dir / "held_out.png", "Held-out pass@1 during RL", [("pass@1", _collect(stages, "held_out"))]))
    add("Length of correct and of wrong completions per RL step", "length_correct_wrong.png",
        _plot(plots_dir / "length_correct_wrong.png", "Completion length (tokens): correct | wrong",
              [("correct", _collect(stages, "length_correct")), ("wrong", _collect(stages, "length_wrong"))]))
    add("Effective self-corrections and empty reflections per completion", "self_corrections.png",
        _plot(plots_dir / "self_corrections.png", "Reflections per completion: effective | empty",
              [("effective", _collect(stages, "effective")), ("empty", _collect(stages, "empty"))]))
    add("Reflection-word rate per RL step", "reflection_rate.png",
        _plot(plots_dir / "reflection_rate.png", "Reflection words ('wait', 'let me check', ...) per completion",
              [("rate", _collect(stages, "reflection_rate"))]))
    add("How the policy answers per RL step: share of each solution style", "solution_styles.png",
        _plot(plots_dir / "solution_styles.png", "Share of completions: answer only | worked | checked",
              [(STYLE_LABELS[s], _collect(stages, f"style_{s}")) for s in SOLUTION_STYLES]))
    add("KL to the reference and policy entropy", "kl_entropy.png",
        _plot(plots_dir / "kl_entropy.png", "KL and entropy per RL step",
              [("KL (k3)", _collect(stages, "kl")), ("entropy (nats/token)", _collect(stages, "entropy"))]))
    add("MoE expert load", "expert_load.png", _expert_load_plot(run_dir, plots_dir / "expert_load.png"))
    summary_path = run_dir / "summary.json"
    seconds = json.loads(summary_path.read_text()).get("stage_seconds", {}) if summary_path.exists() else {}
    add("Stage times", "stage_times.png", _stage_times_plot(seconds, plots_dir / "stage_times.png"))

    results_path = run_dir / "eval" / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    examples_path = run_dir / "eval" / "examples.json"
    examples = json.loads(examples_path.read_text()) if examples_path.exists() else {}
    md = _markdown(run_dir, results, plots, examples, stages)
    atomic_write_text(run_dir / "report.md", md)
    atomic_write_text(run_dir / "report.html", _html(run_dir, results, plots, examples, stages))
    return run_dir / "report.md", run_dir / "report.html"


def _table_rows(results: dict) -> list[list[str]]:
    rows = []
    for c in results.get("checkpoints", []):
        lo, hi = (c.get("pass@1_ci") or [None, None])[:2]
        ci = f"[{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else "–"
        rows.append([c.get("name", "?"), _fmt(c.get("pass@1")), ci, _fmt(c.get("maj@k")),
                     _fmt(c.get("format_rate")), _fmt(c.get("mean_length"), pct=False),
                     _fmt(c.get("think_steps_correct_median"), pct=False), _fmt(c.get("reflection_rate"))])
    return rows


HEADER = ["checkpoint", "pass@1 (%)", "95% CI", "maj@k (%)", "strict format (%)", "mean length (tokens)",
          "steps in right answers (median)", "reflection rate (%)"]


STYLE_LABELS = {"answer_only": "answer only", "worked": "worked steps", "checked": "steps + check"}
STYLES_NOTE = ("How each checkpoint answers: share of its held-out samples in each solution style, and in brackets "
               "that style's accuracy (a bare answer; worked steps; steps with a reflection or a verification line).")


def _styles(results: dict) -> tuple[list[str], list[list[str]]]:
    """Per checkpoint, each solution style's share of the samples and its own accuracy: which way of answering
    a stage moved the model toward, and whether that way is the more accurate one."""
    checkpoints = [c for c in results.get("checkpoints", []) if f"style/{SOLUTION_STYLES[0]}/share" in c]
    if not checkpoints:
        return [], []

    def cell(c: dict, style: str) -> str:
        share, acc = c.get(f"style/{style}/share"), c.get(f"style/{style}/accuracy")
        return f"{_fmt(share)} ({_fmt(acc)})" if isinstance(acc, (int, float)) else _fmt(share)

    header = ["checkpoint"] + [f"{STYLE_LABELS[s]} (%)" for s in SOLUTION_STYLES]
    return header, [[c.get("name", "?")] + [cell(c, s) for s in SOLUTION_STYLES] for c in checkpoints]


def cold_start_line(run_dir: Path) -> str | None:
    """Where the cold-start SFT data came from: the model's own verified samples, programmatic worked solutions."""
    def summary(stage: str) -> dict[str, Any]:
        path = run_dir / stage / "done.json"
        return json.loads(path.read_text()).get("summary", {}) if path.exists() else {}

    sampled, written = summary("cold_start_data"), summary("data").get("cold_start_records")
    if sampled:
        shots = f", {sampled['few_shot']}-shot prompts" if sampled.get("few_shot") else ""
        return (f"Cold-start data: {sampled.get('sampled', 0)} verified samples of {sampled.get('sampled_from')}"
                f"{shots}, and {sampled.get('programmatic', 0)} programmatic worked solutions.")
    return f"Cold-start data: {written} programmatic worked solutions." if written else None


def _breakdown(results: dict) -> tuple[list[str], list[list[str]]]:
    """Per-group pass@1 (eval.group_by, e.g. a proof's depth) and extra held-out tasks, one row per checkpoint."""
    checkpoints = results.get("checkpoints", [])
    key = results.get("settings", {}).get("group_by") or "group"
    groups = sorted({g for c in checkpoints for g in c.get("groups", {})}, key=_numeric_first)
    extras = list(dict.fromkeys(t for c in checkpoints for t in c.get("extra", {})))
    if not groups and not extras:
        return [], []
    header = ["checkpoint"] + [f"{key} {g} (%)" for g in groups] + [f"{t} (%)" for t in extras]
    rows = [[c.get("name", "?")] + [_fmt(c.get("groups", {}).get(g)) for g in groups]
            + [_fmt(c.get("extra", {}).get(t)) for t in extras] for c in checkpoints]
    return header, rows


def _numeric_first(value: str) -> tuple:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def checked_lines(example: dict) -> list[tuple[str, str]] | None:
    """(line, status) for each line of the proof in an example's answer, when its problem is a proof problem."""
    meta = example.get("metadata") or {}
    proof = answer_block(example.get("completion", ""))
    if not isinstance(meta.get("premises"), list) or not isinstance(meta.get("goal"), str) or proof is None:
        return None
    try:
        result = check_proof(meta["premises"], meta["goal"], proof)
    except (FormulaError, R1labError):  # a broken problem, or z3 missing: show the example unmarked
        return None
    return [(f"{v.number}. {v.text}" + (f" [{', '.join(map(str, v.citations))}]" if v.citations else ""), v.status)
            for v in result.lines]


def _settings_line(results: dict) -> str:
    s = results.get("settings", {})
    if not s:
        return "no evaluation settings recorded"
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) and v != v.strip() else f"{k}={v}" for k, v in s.items())


def _markdown(run_dir, results, plots, examples, stages) -> str:
    lines = [f"# r1lab run report: `{run_dir.name}`", ""]
    summary = run_dir / "summary.json"
    if summary.exists():
        rows = headline_rows(json.loads(summary.read_text()))
        lines += ["## Headline", "", "| figure | value | compares |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows] + [""]
    lines += ["## Evaluation (held-out problems)", "", f"Settings: {_settings_line(results)}", ""]
    if (cold := cold_start_line(run_dir)):
        lines += [cold, ""]
    rows = _table_rows(results)
    if rows:
        lines += _md_table(HEADER, rows)
    else:
        lines.append("_No evaluation results were found in this run._")
    header, breakdown = _breakdown(results)
    if breakdown:
        lines += ["", "Held-out pass@1 by group and on the extra held-out tasks:", ""] + _md_table(header, breakdown)
    header, styles = _styles(results)
    if styles:
        lines += ["", STYLES_NOTE, ""] + _md_table(header, styles)
    lines += ["", "## Training curves", ""]
    for title, path in plots:
        lines += [f"### {title}", "", f"![{title}]({path.relative_to(run_dir)})", ""]
    if not plots:
        lines.append("_No RL metrics were found in this run._")
    ahas = first_corrections(run_dir)
    if ahas:
        lines += ["## The first effective self-correction of each RL stage", "",
                  "A reflection that follows a wrong step, writes it right, and ends in the right answer.", ""]
        for stage, aha in ahas:
            lines += [f"### {stage}, RL step {aha.get('step')}", "", f"Prompt: `{str(aha.get('prompt', '')).strip()}`",
                      "", "```", str(aha.get("completion", "")), "```", ""]
    if examples:
        lines += ["## Example completions", ""]
        for ckpt, exs in examples.items():
            lines += [f"### {ckpt}", ""]
            for e in exs:
                mark = "correct" if e.get("correct") else "wrong"
                lines += [f"Prompt: `{e.get('prompt', '').strip()}` — {mark}", "", "```", e.get("completion", ""), "```", ""]
                marked = checked_lines(e)
                if marked:
                    lines += ["Proof checked line by line:", ""]
                    lines += [f"- {'✓' if st == 'verified' else '✗ ' + st} `{text}`" for text, st in marked] + [""]
    return "\n".join(lines) + "\n"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _html_table(header: list[str], rows: list[list[str]], before: str = "") -> list[str]:
    """Parts of an HTML table (`before` is already-escaped HTML put in front of it)."""
    esc = html.escape
    return ([before + "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
            + ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows] + ["</table>"])


def _html(run_dir, results, plots, examples, stages) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>r1lab report: {esc(run_dir.name)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}"
        "img{max-width:100%}.ok{color:#080}.bad{color:#a00}</style></head><body>",
        f"<h1>r1lab run report: <code>{esc(run_dir.name)}</code></h1>",
    ]
    summary = run_dir / "summary.json"
    if summary.exists():
        rows = headline_rows(json.loads(summary.read_text()))
        parts.append("<h2>Headline</h2><table><tr><th>figure</th><th>value</th><th>compares</th></tr>" + "".join(
            f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{esc(c)}</td></tr>" for a, b, c in rows) + "</table>")
    parts.append(f"<h2>Evaluation (held-out problems)</h2><p>Settings: {esc(_settings_line(results))}</p>")
    if (cold := cold_start_line(run_dir)):
        parts.append(f"<p>{esc(cold)}</p>")
    rows = _table_rows(results)
    if rows:
        parts += _html_table(HEADER, rows)
    else:
        parts.append("<p><i>No evaluation results were found in this run.</i></p>")
    header, breakdown = _breakdown(results)
    if breakdown:
        parts += _html_table(header, breakdown, before="<p>Held-out pass@1 by group and on the extra held-out tasks:</p>")
    header, styles = _styles(results)
    if styles:
        parts += _html_table(header, styles, before=f"<p>{html.escape(STYLES_NOTE)}</p>")
    parts.append("<h2>Training curves</h2>")
    for title, path in plots:
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<h3>{esc(title)}</h3><img alt='{esc(title)}' src='data:image/png;base64,{data}'>")
    ahas = first_corrections(run_dir)
    if ahas:
        parts.append("<h2>The first effective self-correction of each RL stage</h2>")
        for stage, aha in ahas:
            parts.append(f"<h3>{esc(stage)}, RL step {esc(str(aha.get('step')))}</h3><p>Prompt: "
                         f"<code>{esc(str(aha.get('prompt', '')).strip())}</code></p>"
                         f"<pre>{esc(str(aha.get('completion', '')))}</pre>")
    if examples:
        parts.append("<h2>Example completions</h2>")
        for ckpt, exs in examples.items():
            parts.append(f"<h3>{esc(ckpt)}</h3>")
            for e in exs:
                cls, mark = ("ok", "correct") if e.get("correct") else ("bad", "wrong")
                parts.append(f"<p>Prompt: <code>{esc(e.get('prompt', '').strip())}</code> — "
                             f"<span class='{cls}'>{mark}</span></p><pre>{esc(e.get('completion', ''))}</pre>")
                marked = checked_lines(e)
                if marked:
                    parts.append("<p>Proof checked line by line:</p><ul>" + "".join(
                        f"<li class='{'ok' if st == 'verified' else 'bad'}'>{'✓' if st == 'verified' else '✗ ' + esc(st)} "
                        f"<code>{esc(text)}</code></li>" for text, st in marked) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
