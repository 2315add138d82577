"""Faults a user will hit, each reproduced for real: two runs on one directory, a full disk, a diverged model, a
checkpoint that contradicts itself, a missing tokenizer, duplicate YAML keys and Ctrl-C. Every one ends in a
one-line error (no traceback) and leaves nothing half-written; docs/RELIABILITY.md lists them."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1lab.atomic import atomic_write_text, raise_if_disk_full, unique_temp_path
from r1lab.config import read_yaml
from r1lab.errors import CheckpointError, ConfigError, DiskFull
from r1lab.lock import LOCK_NAME, DirectoryInUse, directory_lock
from r1lab.train.core.health import DivergenceAlarms

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def r1lab(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "r1lab.cli", *map(str, args)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(p: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def wait_for(pred, p: subprocess.Popen, timeout: float = 300) -> bool:
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.05)
    return False


def one_line_error(err: str) -> str:
    """The last stderr line, checked to be r1lab's one-line error and not a traceback."""
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err[-3000:]
    return last


# ---- 1. two runs on one directory ---------------------------------------------------------------------------
def test_a_second_run_on_the_same_directory_refuses_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    first = r1lab("run", SMOKE, "--out", out, start_new_session=True)
    try:
        assert wait_for(lambda: (out / LOCK_NAME).is_file() and (out / LOCK_NAME).read_text().strip(), first), \
            "the first run never took the lock"
        t0 = time.time()
        code, _, err = finish(r1lab("run", SMOKE, "--out", out))
        assert code == 2 and time.time() - t0 < 60
        line = one_line_error(err)
        assert str(out) in line and f"PID {first.pid}" in line
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


def test_a_dead_holder_does_not_keep_the_directory_locked(tmp_path):
    (tmp_path / LOCK_NAME).write_text("999999\n")  # left behind by a process that was killed
    with directory_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(DirectoryInUse, match=f"PID {os.getpid()}"):  # a second holder, even in-process
            with directory_lock(tmp_path):
                pass
    with directory_lock(tmp_path):  # released on exit
        pass


def test_temporary_names_are_unique_per_writer(tmp_path):
    target = tmp_path / "plot.png"
    a, b = unique_temp_path(target), unique_temp_path(target)
    assert a != b and a.parent == b.parent == tmp_path and a.suffix == ".png"


# ---- 2. a full disk -----------------------------------------------------------------------------------------
def test_disk_full_errors_name_the_file():
    with pytest.raises(DiskFull, match="no space left on device while writing /x/model.safetensors"):
        raise_if_disk_full(OSError(errno.ENOSPC, "No space left on device"), "/x/model.safetensors")
    with pytest.raises(DiskFull):  # safetensors' own error type carries the OS error in its text
        raise_if_disk_full(RuntimeError("Error while serializing: No space left on device (os error 28)"), "/x")
    raise_if_disk_full(OSError(errno.EACCES, "Permission denied"), "/x")  # other errors pass through


@pytest.fixture
def small_filesystem(tmp_path):
    """A 3 MB tmpfs (needs root); skipped with the reason elsewhere."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a size-limited tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_is_one_line_and_nothing_is_marked_done_half_written(small_filesystem):
    out = small_filesystem / "run"
    code, _, err = finish(r1lab("run", SMOKE, "--out", out))
    assert code == 2
    line = one_line_error(err)
    assert line.startswith("error: no space left on device while writing ") and "is intact" in line, line
    for done in out.glob("*/done.json"):  # every stage marked done is whole
        payload = json.loads(done.read_text())
        for value in payload["artifacts"].values():
            if isinstance(value, str) and "/" in value:
                assert (out / value).exists(), value


# ---- 3. a diverged model ------------------------------------------------------------------------------------
def test_a_diverged_pretraining_stops_naming_the_step(tmp_path):
    """The tiny base at lr 1e4: the loss sits above chance and the gradient dies; the stage must not be done."""
    out = tmp_path / "run"
    code, _, err = finish(r1lab("run", SMOKE, "--out", out, "base.train.lr=1e4"))
    assert code == 2
    line = one_line_error(err)
    assert "step " in line and "diverged" in line, line
    assert not (out / "base" / "done.json").exists()


def test_divergence_alarms_by_closed_form():
    vocab, w = 100, 5
    chance = DivergenceAlarms(w, 3.0, 1e4, vocab)
    fired = [chance.check({"loss": 5.0, "ce_loss": 5.0, "grad_norm": 1.0}) for _ in range(2 * w)]  # ln 100 = 4.6
    assert fired[:-1] == [None] * (2 * w - 1) and "uniform guess over 100 tokens" in fired[-1]
    rising = DivergenceAlarms(w, 3.0, 1e4, vocab)
    losses = [1.0] * w + [3.5] * w
    fired = [rising.check({"loss": x, "ce_loss": x, "grad_norm": 1.0}) for x in losses]
    assert "rose above 3 x its early mean 1" in fired[-1]
    dead = DivergenceAlarms(w, None, None, None)
    fired = [dead.check({"loss": 2.0, "grad_norm": 0.0}) for _ in range(w)]
    assert fired[-1] is not None and "gradient norm 0" in fired[-1]
    exploding = DivergenceAlarms(w, None, 1e4, None)
    fired = [exploding.check({"loss": 1.0, "grad_norm": g}) for g in [1.0] * w + [1e5] * w]
    assert "gradient norm above" in fired[-1]
    healthy = DivergenceAlarms(w, 3.0, 1e4, vocab)
    assert all(healthy.check({"loss": x, "ce_loss": x, "grad_norm": 0.5}) is None
               for x in [4.5 - 0.1 * i for i in range(4 * w)])
    no_signal = DivergenceAlarms(w, None, None, None)  # an RL batch with zero advantages: loss 0, gradient 0
    assert all(no_signal.check({"loss": 0.0, "grad_norm": 0.0}) is None for _ in range(3 * w))
    off = DivergenceAlarms(0, 3.0, 1e4, vocab)
    assert all(off.check({"loss": 9.0, "ce_loss": 9.0, "grad_norm": 0.0}) is None for _ in range(50))


# ---- 4. a checkpoint that contradicts itself ----------------------------------------------------------------
def test_hf_fields_that_contradict_the_r1lab_section_are_a_checkpoint_error(tmp_path):
    import torch

    from r1lab.model import ModelConfig, Transformer
    from r1lab.sources import load_model

    torch.manual_seed(0)
    cfg = ModelConfig.from_preset("tiny", vocab_size=64, dim=32, n_layers=1, n_dense_layers=1, inter_dim=64,
                                  n_heads=2, q_lora_rank=0, kv_lora_rank=16, qk_nope_head_dim=8,
                                  qk_rope_head_dim=8, v_head_dim=8, mtp_depth=0, max_seq_len=32,
                                  original_seq_len=32)
    Transformer(cfg).save_pretrained(tmp_path)
    load_model(tmp_path)  # consistent as saved
    config = json.loads((tmp_path / "config.json").read_text())
    config["hidden_size"] = 64
    atomic_write_text(tmp_path / "config.json", json.dumps(config))
    with pytest.raises(CheckpointError, match=r"'hidden_size' is 64 but the r1lab section gives 32"):
        load_model(tmp_path)
    code, _, err = finish(r1lab("generate", "--model", tmp_path, "--prompt", "1 2"))
    assert code == 2 and "'hidden_size' is 64" in one_line_error(err)


# ---- 5. a missing tokenizer ---------------------------------------------------------------------------------
def test_a_missing_tokenizer_is_one_line(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "train"))
    from rl_toy import char_tokenizer, tiny_llama

    tok = char_tokenizer()
    tiny_llama(len(tok)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    code, _, err = finish(r1lab("generate", "--model", tmp_path, "--prompt", "ab"))
    assert code == 2
    assert f"{tmp_path} has no tokenizer (tokenizer.json or tokenizer_config.json)" in one_line_error(err)


# ---- 6. duplicate YAML keys ---------------------------------------------------------------------------------
def test_a_duplicate_yaml_key_names_both_lines(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("name: x\nseed: 0\nbase:\n  train: {lr: 1.0}\nname: y\n")
    with pytest.raises(ConfigError, match=r"recipe.yaml: line 5: duplicate key 'name' \(line 1 and line 5\)"):
        read_yaml(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("base:\n  train:\n    lr: 1.0\n    lr: 2.0\n")
    with pytest.raises(ConfigError, match=r"line 4: duplicate key 'lr' \(line 3 and line 4\)"):
        read_yaml(nested)
    merged = tmp_path / "merged.yaml"  # overriding a key brought in by a merge is what merges are for
    merged.write_text("a: &rl\n  lr: 1.0\n  steps: 3\nb:\n  <<: *rl\n  lr: 2.0\n")
    assert read_yaml(merged) == {"a": {"lr": 1.0, "steps": 3}, "b": {"lr": 2.0, "steps": 3}}
    code, _, err = finish(r1lab("run", path, "--out", tmp_path / "run"))
    assert code == 2 and "duplicate key 'name'" in one_line_error(err)


# ---- 7. make bench on a fresh machine -----------------------------------------------------------------------
def test_make_bench_installs_what_the_benchmarks_import():
    makefile = (ROOT / "Makefile").read_text()
    bench_recipe = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    assert ".[bench" in bench_recipe
    for bench in sorted((ROOT / "benchmarks").glob("*.py")):
        text = bench.read_text()
        doc = text.split('"""', 2)[1]
        assert "Needs:" in doc, f"{bench.name}: the docstring must say what the benchmark needs installed"
        if "import trl" in text or "from trl" in text or "from datasets" in text:
            assert "r1lab[bench" in doc, f"{bench.name}: docstring must name the bench extra"
        if "smollm2" in text.split('"""', 2)[2]:
            assert "smollm2" in doc.split("Needs:", 1)[1], f"{bench.name}: docstring must name the smollm2 extra"


# ---- 8. Ctrl-C ----------------------------------------------------------------------------------------------
def test_ctrl_c_inside_a_stage_says_where_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    # a shell's background job inherits SIGINT ignored, and Python then installs no Ctrl-C handler: restore the
    # default in the child, as a terminal would have it
    p = r1lab("run", SMOKE, "--out", out, start_new_session=True,
              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    inside = wait_for(lambda: (out / "r1_zero" / "checkpoint" / "trainer_state").exists(), p)
    assert inside, "the run finished before it could be interrupted inside r1_zero"
    os.killpg(p.pid, signal.SIGINT)
    code, _, err = finish(p)
    assert code == 130, err[-3000:]
    line = one_line_error(err)
    assert line.startswith("error: interrupted during r1_zero at step ") and "r1lab run --resume" in line, line
    assert (out / "r1_zero" / "checkpoint" / "trainer_state").exists()  # the last checkpoint is intact
    assert not (out / "r1_zero" / "done.json").exists()
    code, _, err = finish(r1lab("run", SMOKE, "--out", out, "--resume"))
    assert code == 0, err[-3000:]
    assert (out / "summary.json").is_file()
