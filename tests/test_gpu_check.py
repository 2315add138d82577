"""`make gpu-check` without a GPU: the part runner isolates failures and hangs and reports every figure, CUDA parts
are skipped with their reason, and the offline install puts a folder of wheels into a Python without a network."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from r1lab.gpu_check import install
from r1lab.gpu_check.parts import PARTS
from r1lab.gpu_check.runner import Part, parse_results, run_check, select_parts

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def script(code: str) -> tuple[str, ...]:
    return (PY, "-c", code)


def test_results_are_parsed_from_result_lines():
    text = "noise\nRESULT a 1.5\nRESULT b nan-ish\nRESULT a 2\n  RESULT c 3\nRESULT d 4e-3\n"
    assert parse_results(text) == {"a": 2.0, "d": 0.004}


def test_every_part_runs_in_isolation_and_the_report_names_the_failures(tmp_path):
    parts = [
        Part("first", script("print('RESULT speed 2.5')"), 30, needs_cuda=False),
        Part("boom", script("import sys; print('RESULT partial 1'); sys.exit(3)"), 30, needs_cuda=False),
        Part("slow", script("import time; time.sleep(30)"), 1.0, needs_cuda=False),
        Part("cuda_only", script("print('never')"), 30, needs_cuda=True),
        Part("last", script("import sys; print('RESULT ratio 4'); print('to stderr', file=sys.stderr)"), 30,
             needs_cuda=False),
    ]
    lines: list[str] = []
    code = run_check(parts, cuda=False, out_dir=tmp_path / "report", cwd=ROOT, header={"gpu": "none"},
                     log=lines.append)
    assert code == 1
    assert lines[-1] == "gpu-check: failed: boom, slow"
    report = json.loads((tmp_path / "report" / "gpu_check.json").read_text())
    status = {p["name"]: p["status"] for p in report["parts"]}
    assert status == {"first": "passed", "boom": "failed", "slow": "timeout", "cuda_only": "skipped", "last": "passed"}
    assert report["results"] == {"speed": 2.5, "partial": 1.0, "ratio": 4.0}
    assert next(p for p in report["parts"] if p["name"] == "cuda_only")["reason"] == "no CUDA device on this machine"
    assert next(p for p in report["parts"] if p["name"] == "slow")["seconds"] < 10  # killed at its limit
    md = (tmp_path / "report" / "gpu_check.md").read_text()
    assert "| boom | failed |" in md and "| slow | timeout |" in md and "ratio 4" in md
    assert "RESULT speed 2.5" in lines and any(line.startswith("RESULT gpu_check_minutes ") for line in lines)


def test_all_passing_or_skipped_exits_zero(tmp_path):
    parts = [Part("ok", script("pass"), 30, needs_cuda=False), Part("gpu", script("pass"), 30)]
    lines: list[str] = []
    assert run_check(parts, cuda=False, out_dir=tmp_path, cwd=ROOT, header={}, log=lines.append) == 0
    assert lines[-1] == "gpu-check: every part passed (1 skipped: no CUDA)"


def test_part_selection():
    default = [p.name for p in select_parts(PARTS, None)]
    assert "pipeline" not in default and default[0] == "env"
    assert {"gpu_tests", "fp8", "nccl", "smoke", "grpo_vs_trl", "mla_decode"} <= set(default)
    assert [p.name for p in select_parts(PARTS, "pipeline,env")] == ["env", "pipeline"]  # declaration order
    with pytest.raises(SystemExit, match="unknown part.*nope"):
        select_parts(PARTS, "env,nope")
    for p in PARTS:  # every script a part runs exists in the checkout
        for arg in p.command:
            if arg.endswith(".py") or arg.endswith(".yaml"):
                assert (ROOT / arg).is_file(), (p.name, arg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")
def test_make_gpu_check_without_a_gpu_skips_the_cuda_parts_and_exits_zero(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run(["make", "-s", "gpu-check", f"GPU_PY={PY}", f"GPU_CHECK_OUT={out}", "PARTS=env,fp8,smoke"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert [(p["name"], p["status"]) for p in report["parts"]] == [("env", "passed"), ("fp8", "skipped"),
                                                                   ("smoke", "skipped")]
    assert report["results"]["cuda_devices"] == 0.0


def make_wheel(folder: Path, name: str = "r1lab_offline_probe", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel, written by hand (no network, no build backend)."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": "VALUE = 42\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{k},,\n" for k in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
        z.writestr(f"{info}/RECORD", record)
    return path


def test_offline_install_of_a_wheel_folder_into_a_python_without_network(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    make_wheel(wheels)
    venv = tmp_path / "venv"
    subprocess.run([PY, "-m", "venv", "--system-site-packages", str(venv)], check=True, capture_output=True)
    py = venv / "bin" / "python"
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "PIP_INDEX_URL": "http://127.0.0.1:9/none"}
    proc = subprocess.run([str(py), "-m", "r1lab.gpu_check.install", "--wheels", str(wheels), "--no-project"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    probe = subprocess.run([str(py), "-c", "import r1lab_offline_probe as m; print(m.VALUE)"], capture_output=True,
                           text=True)
    assert probe.stdout.strip() == "42"


def test_install_commands_keep_the_machines_torch_and_never_touch_the_network(tmp_path):
    wheel = make_wheel(tmp_path)
    cmds = install.commands([wheel], project=True, python="py")
    assert all("--no-index" in c and "--no-deps" in c for c in cmds)
    assert cmds[0][-1] == str(wheel) and cmds[1][-2:] == ["-e", str(install.ROOT)]
    assert "--no-build-isolation" in cmds[1]


def test_no_wheels_and_missing_modules_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(install, "missing_modules", lambda: ["math_verify"])
    assert install.main(["--wheels", str(tmp_path / "absent"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "absent" in err and "make gpu-wheels" in err
