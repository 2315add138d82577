"""`r1lab run` end to end on configs/smoke.yaml: every stage's artifacts and the report exist and parse, a run
killed between stages and inside a stage resumes to the same results as an uninterrupted run, and the 671B
paper config is refused on a CPU."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1lab.recipe.stages import EVALUATED, headline

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def r1lab(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "r1lab.cli", *map(str, args)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def run_to_end(*args, timeout=600):
    p = r1lab(*args)
    out, _ = p.communicate(timeout=timeout)
    assert p.returncode == 0, out[-3000:]
    return out


def kill_when(path_pred, *args, timeout=600):
    """Start a run, SIGKILL it as soon as `path_pred()` holds; return True if it was killed mid-run."""
    p = r1lab(*args, start_new_session=True)
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < timeout:
        if path_pred():
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return True
        time.sleep(0.05)
    p.communicate()
    return False


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    log = run_to_end("run", SMOKE, "--out", out)
    return out, log


def test_every_stage_artifact_and_the_report(full_run):
    run, log = full_run
    stages = json.loads((run / "stages.json").read_text())
    for name in stages:
        done = json.loads((run / name / "done.json").read_text())
        for value in done["artifacts"].values():
            assert (run / value).exists(), (name, value)
        if "checkpoint" in done["artifacts"]:
            ckpt = run / done["artifacts"]["checkpoint"]
            assert (ckpt / "config.json").exists() and (ckpt / "model.safetensors").exists()
            assert (ckpt / "tokenizer.json").exists()
    results = json.loads((run / "eval" / "results.json").read_text())
    assert [c["stage"] for c in results["checkpoints"]] == [s for s, _ in EVALUATED]
    for c in results["checkpoints"]:
        assert 0.0 <= c["pass@1"] <= 1.0 and c["n"] == 2
    assert results["settings"]["temperature"] == 0.6 and results["settings"]["top_p"] == 0.95
    summary = json.loads((run / "summary.json").read_text())
    by_stage = {c["stage"]: c for c in results["checkpoints"]}
    assert summary["rl_gain_points"] == headline(by_stage)["rl_gain_points"]
    md = (run / "report.md").read_text()
    assert "| reasoning RL |" in md and "| Reasoning-RL gain |" in md
    html = (run / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    assert (run / "plots" / "reward_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    for stage in ("r1_zero", "r1_rl"):
        rows = [json.loads(line) for line in (run / stage / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == 3 and all("reward" in r for r in rows)


def test_second_run_skips_everything(full_run):
    run, _ = full_run
    before = (run / "eval" / "results.json").read_text()
    log = run_to_end("run", SMOKE, "--out", run)
    assert log.count("done, skipped") == 13
    assert (run / "eval" / "results.json").read_text() == before


def inside(run: Path, stage: str, marker: str = "") -> bool:
    """The run is inside `stage`: its directory (and `marker` in it, when given) exists, done.json does not."""
    d = run / stage
    return d.is_dir() and (not marker or (d / marker).exists()) and not (d / "done.json").exists()


# one kill inside every kind of stage, in run order, then one between stages and one while writing the report
KILL_POINTS = [
    ("inside pretraining", lambda run: inside(run, "base", "metrics.jsonl")),
    ("between stages", lambda run: (run / "base" / "done.json").exists()),
    ("inside RL", lambda run: inside(run, "r1_zero", "checkpoint/trainer_state")),
    ("inside SFT", lambda run: inside(run, "cold_start", "metrics.jsonl")),
    ("inside rejection sampling", lambda run: inside(run, "rejection")),
    ("inside distillation data", lambda run: inside(run, "distill_data")),
    ("inside eval", lambda run: inside(run, "eval")),
    ("inside the report", lambda run: (run / "summary.json").exists() and not (run / "report.html").exists()),
]


def test_killed_run_resumes_to_the_same_results(full_run, tmp_path):
    reference, _ = full_run
    run = tmp_path / "run"
    missed = []
    for i, (where, pred) in enumerate(KILL_POINTS):
        args = ("run", SMOKE, "--out", run) + (("--resume",) if i else ())
        if not kill_when(lambda: pred(run), *args):
            missed.append(where)
            break  # the run finished: nothing later to kill
    # the report is written in well under a second; every other point must be hit
    assert missed in ([], ["inside the report"]), f"the run finished before it could be killed {missed}"
    run_to_end("run", SMOKE, "--out", run, "--resume")
    a = json.loads((reference / "eval" / "results.json").read_text())["checkpoints"]
    b = json.loads((run / "eval" / "results.json").read_text())["checkpoints"]
    assert [(c["stage"], c["pass@1"], c["mean_length"]) for c in a] == [(c["stage"], c["pass@1"], c["mean_length"]) for c in b]
    summary = [{k: v for k, v in json.loads((r / "summary.json").read_text()).items() if k != "stage_seconds"}
               for r in (reference, run)]
    assert summary[0] == summary[1]
    for stage in ("base", "r1_zero", "cold_start"):
        ra = [json.loads(x)["loss"] for x in (reference / stage / "metrics.jsonl").read_text().splitlines()]
        rb = [json.loads(x)["loss"] for x in (run / stage / "metrics.jsonl").read_text().splitlines()]
        assert ra == pytest.approx(rb, abs=1e-6), stage
    assert (run / "report.html").is_file()


def test_from_stage_reruns_downstream(full_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(full_run[0], run)
    log = run_to_end("run", SMOKE, "--out", run, "--from", "student_rl")
    assert log.count("done, skipped") == 11 and "student_rl: finished" in log and "eval: finished" in log


def test_paper_config_refused_on_cpu(tmp_path):
    p = r1lab("run", ROOT / "configs" / "paper.yaml", "--out", tmp_path / "p")
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 2
    assert "671B parameters and cannot be trained on a CPU" in out and "Traceback" not in out
    assert not (tmp_path / "p").exists()


def test_a_quality_gate_ends_the_base_at_the_first_check_on_the_recipes_validation_problems(tmp_path):
    out = tmp_path / "gated"
    run_to_end("run", SMOKE, "base.stop_at.pass_at_1=0.01", "base.stop_at.every=2", "base.stop_at.size=4",
               "stages=[data, base, eval]", "--out", out)
    steps = json.loads((out / "base" / "done.json").read_text())["summary"]["steps"]
    rows = [json.loads(line) for line in (out / "base" / "metrics.jsonl").read_text().splitlines()]
    checks = [(r["step"], r["validation/pass@1"]) for r in rows if "validation/pass@1" in r]
    assert steps < 200 and rows[-1]["step"] == steps            # ended before the 200-step budget ...
    assert checks[-1] == (steps, checks[-1][1]) and checks[-1][1] >= 0.01   # ... at the check that met the gate
    assert all(score < 0.01 for _, score in checks[:-1]) and [s for s, _ in checks] == list(range(2, steps + 1, 2))
    assert json.loads((out / "summary.json").read_text())["base_pretrain_steps"] == steps
