"""The sweep's comparison report: every checkpoint's pass@1 and every headline figure as mean ± std over the grid,
and the RL curves of every run overlaid. Built only from the points' own files (`eval/results.json`,
`summary.json`, `metrics.jsonl`); a point without results is listed as missing, never filled in.

Runs that differ only in `seed` form one group: their mean ± std (sample std, n − 1) and the worst run are the
figures a finding is judged by. With other axes (`r1_zero.preset=r1,dr_grpo`), each of their combinations is a
group of its own, side by side.
"""

from __future__ import annotations

import base64
import html
import json
import statistics
from pathlib import Path
from typing import Any

from r1lab.atomic import atomic_write_json, atomic_write_text
from r1lab.report import CURVES, curve, rl_stages, save_figure

SEED_AXIS = "seed"
CURVE_METRICS = (("accuracy", "accuracy"), ("completion_length", "mean completion length (tokens)"))


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def group_name(overrides: list[str]) -> str:
    rest = [o for o in overrides if o.partition("=")[0] != SEED_AXIS]
    return ", ".join(rest) or "all runs"


def stats(values: list[float]) -> dict[str, float | int]:
    """n, mean, sample std (0 for one value), min and max."""
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "min": min(values), "max": max(values)}


def aggregate(sweep_dir: Path) -> dict[str, Any]:
    """{groups: {group: {points, missing, checkpoints: {name: stats of pass@1}, headline: {key: stats}}}}."""
    manifest = _load(sweep_dir / "sweep.json") or {"points": []}
    groups: dict[str, dict[str, Any]] = {}
    for point in manifest["points"]:
        g = groups.setdefault(group_name(point["overrides"]),
                              {"points": [], "missing": [], "checkpoints": {}, "headline": {}})
        run = sweep_dir / point["name"]
        results, summary = _load(run / "eval" / "results.json"), _load(run / "summary.json")
        if not results or not summary:
            g["missing"].append(point["name"])
            continue
        g["points"].append(point["name"])
        for c in results.get("checkpoints", []):
            if isinstance(c.get("pass@1"), (int, float)):
                g["checkpoints"].setdefault(c["name"], []).append(100 * c["pass@1"])
        for key, value in summary.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                g["headline"].setdefault(key, []).append(float(value))
    for g in groups.values():
        g["checkpoints"] = {k: stats(v) for k, v in g["checkpoints"].items()}
        g["headline"] = {k: stats(v) for k, v in g["headline"].items()}
    return {"config": manifest.get("config"), "axes": manifest.get("axes", []), "groups": groups}


def _pm(s: dict | None, digits: int = 1) -> str:
    if not s:
        return "–"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _tables(agg: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for the pass@1 table and the headline table."""
    names = list(agg["groups"])
    checkpoints = list(dict.fromkeys(c for g in agg["groups"].values() for c in g["checkpoints"]))
    keys = list(dict.fromkeys(k for g in agg["groups"].values() for k in g["headline"]))
    header = ["checkpoint"] + [f"{n} (n={len(agg['groups'][n]['points'])})" for n in names]
    passes = [[c] + [f"{_pm(agg['groups'][n]['checkpoints'].get(c))} (min {agg['groups'][n]['checkpoints'][c]['min']:.1f})"
                     if c in agg["groups"][n]["checkpoints"] else "–" for n in names] for c in checkpoints]
    heads = [[k] + [(f"{_pm(agg['groups'][n]['headline'].get(k), 2)} "
                     f"[{agg['groups'][n]['headline'][k]['min']:.2f}, {agg['groups'][n]['headline'][k]['max']:.2f}]")
                    if k in agg["groups"][n]["headline"] else "–" for n in names] for k in keys]
    return [("Held-out pass@1 (%), mean ± std over the runs (worst run)", header, passes),
            ("Headline figures, mean ± std [min, max]", ["figure"] + header[1:], heads)]


def _curves_plot(sweep_dir: Path, agg: dict[str, Any], metric: str, ylabel: str) -> Path | None:
    """One panel per RL stage; one line per run, coloured by group."""
    import matplotlib  # only when a report is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # only when a report is drawn

    per_stage: dict[str, list[tuple[str, int, tuple]]] = {}
    for gi, (name, g) in enumerate(agg["groups"].items()):
        for point in g["points"]:
            for stage, rows in rl_stages(sweep_dir / point).items():
                c = curve(rows, CURVES[metric])
                if c:
                    per_stage.setdefault(stage, []).append((f"{point}", gi, c))
    if not per_stage:
        return None
    fig, axes = plt.subplots(1, len(per_stage), figsize=(4.6 * len(per_stage), 3.4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (stage, lines) in zip(axes[0], per_stage.items()):
        for label, gi, (x, y) in lines:
            ax.plot(x, y, color=colours[gi % len(colours)], alpha=0.7, linewidth=1.2, label=label)
        ax.set_title(stage)
        ax.set_xlabel("RL step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if sum(len(v) for v in per_stage.values()) <= 12 * len(per_stage):
        axes[0][0].legend(fontsize=6)
    path = sweep_dir / "plots" / f"sweep_{metric}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path if save_figure(fig, path) else None


def write_sweep_report(sweep_dir: str | Path) -> tuple[Path, Path]:
    """`sweep.md`, `sweep.html` and `sweep_results.json` (the aggregates) in the sweep directory."""
    sweep_dir = Path(sweep_dir)
    agg = aggregate(sweep_dir)
    atomic_write_json(sweep_dir / "sweep_results.json", agg)
    tables = _tables(agg)
    plots = [(label, p) for metric, label in CURVE_METRICS if (p := _curves_plot(sweep_dir, agg, metric, label))]
    axes = "; ".join(f"{a['key']} = {', '.join(a['values'])}" for a in agg["axes"])
    missing = [m for g in agg["groups"].values() for m in g["missing"]]

    md = [f"# r1lab sweep: `{agg['config']}`", "", f"Grid: {axes}.", ""]
    if missing:
        md += [f"Runs without results (failed or unfinished, not counted): {', '.join(missing)}.", ""]
    for title, header, rows in tables:
        md += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        md += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    md += ["## RL curves, every run overlaid", ""]
    md += [f"![{label}]({p.relative_to(sweep_dir)})" for label, p in plots] or ["_No RL metrics were found._"]
    atomic_write_text(sweep_dir / "sweep.md", "\n".join(md) + "\n")

    esc = html.escape
    page = ["<!doctype html><html><head><meta charset='utf-8'>", f"<title>r1lab sweep: {esc(str(agg['config']))}</title>",
            "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
            "td:first-child,th:first-child{text-align:left}img{max-width:100%}</style></head><body>",
            f"<h1>r1lab sweep: <code>{esc(str(agg['config']))}</code></h1><p>Grid: {esc(axes)}.</p>"]
    if missing:
        page.append(f"<p>Runs without results (not counted): {esc(', '.join(missing))}.</p>")
    for title, header, rows in tables:
        page.append(f"<h2>{esc(title)}</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        page += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows] + ["</table>"]
    page.append("<h2>RL curves, every run overlaid</h2>")
    page += [f"<img alt='{esc(label)}' src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}'>"
             for label, p in plots]
    page.append("</body></html>")
    atomic_write_text(sweep_dir / "sweep.html", "\n".join(page))
    return sweep_dir / "sweep.md", sweep_dir / "sweep.html"
