"""`r1lab sweep CONFIG AXIS=v1,v2 ...`: the recipe over a grid of overrides, one process per grid point.

A finding counts only when it holds across seeds, so the sweep is how r1lab's figures are made: each grid point is
a full `r1lab run` of CONFIG with that point's overrides, in its own directory under the sweep's, as its own
process (`--jobs N` at a time). Every point runs with `--resume`, so running the same sweep again skips finished
points (their stages are done) and continues a killed one inside its unfinished stage. At the end the comparison
report (`r1lab.recipe.sweep_report`) is written from the points' own files.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from r1lab.atomic import atomic_write_json
from r1lab.config import load_config
from r1lab.errors import ConfigError, R1labError
from r1lab.lock import directory_lock
from r1lab.recipe.config import RecipeConfig

_SAFE = re.compile(r"[^A-Za-z0-9_.,=-]+")


@dataclass(frozen=True)
class GridPoint:
    overrides: tuple[str, ...]  # "key=value" in axis order

    @property
    def name(self) -> str:
        """A directory name that says what the point is: `seed=1,r1_zero.preset=dr_grpo`."""
        return _SAFE.sub("_", ",".join(self.overrides)) or "default"

    def value(self, axis: str) -> str | None:
        for o in self.overrides:
            key, _, value = o.partition("=")
            if key == axis:
                return value
        return None


def parse_axes(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
    """`["seed=0,1,2", "r1_zero.preset=r1,dr_grpo"]` -> [(axis, values)]; malformed specs are one-line errors."""
    axes: list[tuple[str, list[str]]] = []
    for spec in specs:
        key, eq, values = spec.partition("=")
        key = key.strip()
        items = [v.strip() for v in values.split(",")]
        if not eq or not key or not all(items):
            raise ConfigError(f"sweep axis {spec!r}: expected KEY=v1,v2,... (e.g. seed=0,1,2)")
        if key in (k for k, _ in axes):
            raise ConfigError(f"sweep axis {key!r} is given twice")
        if len(set(items)) != len(items):
            raise ConfigError(f"sweep axis {key!r} repeats a value: {values}")
        axes.append((key, items))
    if not axes:
        raise ConfigError("sweep: give at least one axis, e.g. seed=0,1,2")
    return axes


def grid(axes: Sequence[tuple[str, list[str]]]) -> list[GridPoint]:
    return [GridPoint(tuple(f"{k}={v}" for (k, _), v in zip(axes, combo)))
            for combo in itertools.product(*(values for _, values in axes))]


@dataclass
class PointResult:
    point: GridPoint
    returncode: int
    seconds: float
    error: str = ""


def run_point(config: Path, point: GridPoint, run_dir: Path, extra: Sequence[str] = ()) -> PointResult:
    """One grid point as its own `r1lab run --resume` process; its output goes to `<run_dir>.log`."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = run_dir.parent / f"{run_dir.name}.log"
    cmd = [sys.executable, "-m", "r1lab.cli", "run", str(config), "--out", str(run_dir), "--resume",
           *extra, *point.overrides]
    t0 = time.monotonic()
    with log_path.open("a", encoding="utf-8") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    error = ""
    if proc.returncode != 0:
        tail = [line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        error = tail[-1] if tail else f"exit {proc.returncode}"
    return PointResult(point, proc.returncode, time.monotonic() - t0, error)


def run_sweep(config: str | Path, axes_specs: Sequence[str], out: str | Path | None = None, *, jobs: int = 1,
              overrides: Sequence[str] = (), log: Callable[[str], None] = print) -> Path:
    """Run every grid point (`jobs` at a time), then write the comparison report; returns the sweep directory.
    Raises after the report when a point failed, naming each failed point and its last log line."""
    from r1lab.recipe.sweep_report import write_sweep_report  # the report pulls in plotting; only at the end

    config = Path(config)
    if not config.is_file():
        raise ConfigError(f"{config}: recipe config not found")
    if jobs < 1:
        raise ConfigError(f"sweep: --jobs must be >= 1, got {jobs}")
    axes = parse_axes(axes_specs)
    points = grid(axes)
    for point in points:  # every point's config must validate before any run starts
        load_config(RecipeConfig, config, [*overrides, *point.overrides])
    sweep_dir = Path(out) if out is not None else Path("runs") / f"sweep-{config.stem}"
    with directory_lock(sweep_dir):
        atomic_write_json(sweep_dir / "sweep.json", {
            "config": str(config), "axes": [{"key": k, "values": v} for k, v in axes],
            "overrides": list(overrides), "points": [{"name": p.name, "overrides": list(p.overrides)} for p in points]})
        grid_text = "; ".join(f"{k} = {', '.join(v)}" for k, v in axes)
        log(f"sweep: {len(points)} runs of {config} ({grid_text}), "
            f"{jobs} at a time, in {sweep_dir}")

        def one(point: GridPoint) -> PointResult:
            log(f"  {point.name}: running (log: {sweep_dir / point.name}.log)")
            result = run_point(config, point, sweep_dir / point.name, overrides)
            log(f"  {point.name}: {'done' if result.returncode == 0 else 'FAILED: ' + result.error} "
                f"({result.seconds / 60:.1f} min)")
            return result

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(one, points))
        md, _ = write_sweep_report(sweep_dir)
    log(f"sweep report: {md}")
    failed = [r for r in results if r.returncode != 0]
    if failed:
        raise R1labError(f"sweep: {len(failed)} of {len(results)} runs failed: "
                         + "; ".join(f"{r.point.name}: {r.error}" for r in failed)
                         + " (run the same sweep again to resume them)")
    return sweep_dir
