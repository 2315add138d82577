"""`r1lab sweep`: the grid, one process per point, resumable after a kill, and a comparison report whose every
number is a mean ± std over the points' own results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1lab.errors import ConfigError
from r1lab.recipe.sweep import grid, parse_axes
from r1lab.recipe.sweep_report import aggregate, stats, write_sweep_report

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


def test_axes_grid_and_point_names():
    axes = parse_axes(["seed=0,1", "r1_zero.preset=r1,dr_grpo"])
    points = grid(axes)
    assert [p.overrides for p in points] == [
        ("seed=0", "r1_zero.preset=r1"), ("seed=0", "r1_zero.preset=dr_grpo"),
        ("seed=1", "r1_zero.preset=r1"), ("seed=1", "r1_zero.preset=dr_grpo")]
    assert points[1].name == "seed=0,r1_zero.preset=dr_grpo" and points[1].value("seed") == "0"
    for bad in (["seed"], ["seed="], ["seed=0,,1"], ["seed=0,0"], ["seed=0", "seed=1"], []):
        with pytest.raises(ConfigError):
            parse_axes(bad)


def fake_run(sweep: Path, name: str, overrides: list[str], base: float, r1: float, gain: float, lengths=None) -> None:
    run = sweep / name
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "results.json").write_text(json.dumps({"checkpoints": [
        {"name": "base", "stage": "base", "pass@1": base}, {"name": "R1", "stage": "r1", "pass@1": r1}]}))
    (run / "summary.json").write_text(json.dumps({"rl_gain_points": gain, "stage_seconds": {"base": 1.0}}))
    if lengths:
        (run / "r1_zero").mkdir()
        (run / "r1_zero" / "metrics.jsonl").write_text("\n".join(json.dumps(
            {"step": i, "reward": 0.1 * i, "accuracy": 0.1 * i, "completions/mean_length": v}) for i, v in enumerate(lengths)))


def test_report_is_mean_std_and_worst_over_seeds_per_group(tmp_path):
    points = [["seed=0", "r1_zero.preset=r1"], ["seed=1", "r1_zero.preset=r1"],
              ["seed=0", "r1_zero.preset=dr_grpo"], ["seed=1", "r1_zero.preset=dr_grpo"]]
    names = [",".join(p) for p in points]
    (tmp_path / "sweep.json").write_text(json.dumps({"config": "c.yaml", "axes": [
        {"key": "seed", "values": ["0", "1"]}, {"key": "r1_zero.preset", "values": ["r1", "dr_grpo"]}],
        "points": [{"name": n, "overrides": p} for n, p in zip(names, points)]}))
    fake_run(tmp_path, names[0], points[0], 0.5, 0.9, 10.0, lengths=[10, 12, 14])
    fake_run(tmp_path, names[1], points[1], 0.3, 0.7, 20.0, lengths=[10, 11, 9])
    fake_run(tmp_path, names[2], points[2], 0.4, 0.8, 5.0)  # names[3] never finished
    agg = aggregate(tmp_path)
    r1 = agg["groups"]["r1_zero.preset=r1"]
    assert r1["checkpoints"]["R1"] == stats([90.0, 70.0]) and r1["checkpoints"]["R1"]["std"] == pytest.approx(14.142, 1e-3)
    assert r1["headline"]["rl_gain_points"]["mean"] == 15.0 and "stage_seconds" not in r1["headline"]
    assert agg["groups"]["r1_zero.preset=dr_grpo"]["missing"] == [names[3]]
    md, page = write_sweep_report(tmp_path)
    text = md.read_text()
    assert "| R1 | 80.0 ± 14.1 (min 70.0) | 80.0 ± 0.0 (min 80.0) |" in text
    assert "r1_zero.preset=r1 (n=2)" in text and "not counted" in text and names[3] in text
    assert "| rl_gain_points | 15.00 ± 7.07 [10.00, 20.00] |" in text
    assert (tmp_path / "plots" / "sweep_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in page.read_text()
    assert json.loads((tmp_path / "sweep_results.json").read_text())["groups"]["r1_zero.preset=r1"]["points"] == names[:2]


def sweep_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "r1lab.cli", "sweep", str(SMOKE), "seed=0,1", "--out", str(out)]


def test_smoke_sweep_over_two_seeds_survives_a_kill(tmp_path):
    out = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(sweep_cmd(out), cwd=ROOT, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (out / "seed=1" / "base").exists():  # the first point finished, the second is under way
        assert first.poll() is None and time.monotonic() < deadline, "the sweep ended or stalled before the kill"
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert (out / "seed=0" / "summary.json").exists() and not (out / "seed=1" / "summary.json").exists()

    again = subprocess.run(sweep_cmd(out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    log0 = (out / "seed=0.log").read_text()
    assert log0.count("[1/13] data: done, skipped") == 1  # the finished point was not redone
    agg = json.loads((out / "sweep_results.json").read_text())
    (group,) = agg["groups"].values()
    assert group["points"] == ["seed=0", "seed=1"] and not group["missing"]
    r1 = group["checkpoints"]["R1 (second RL)"]
    assert r1["n"] == 2 and 0 <= r1["min"] <= r1["mean"] <= r1["max"] <= 100
    text = (out / "sweep.md").read_text()
    assert "Held-out pass@1 (%)" in text and "(n=2)" in text and "sweep_accuracy.png" in text


def test_a_bad_axis_or_value_fails_before_any_run(tmp_path):
    from r1lab.recipe.sweep import run_sweep

    with pytest.raises(ConfigError, match="nonsense"):
        run_sweep(SMOKE, ["seed=0,1", "nonsense=1,2"], tmp_path / "s", log=lambda _: None)
    with pytest.raises(ConfigError, match="r1_zero.preset|preset"):
        run_sweep(SMOKE, ["r1_zero.preset=r1,no_such_preset"], tmp_path / "s", log=lambda _: None)
    assert not (tmp_path / "s").exists()
