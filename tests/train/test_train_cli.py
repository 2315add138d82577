"""`r1lab pretrain | sft | rl | sample | distill CONFIG [--resume] [key=value ...]`."""

from __future__ import annotations

import json

import pytest
from train_hf_toy import addition_records, tiny_llama, tiny_tokenizer

from r1lab.cli import main
from r1lab.train.core.metrics_log import read_metrics


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("command", ["pretrain", "sft", "distill"])
def test_unknown_key_is_one_line_and_exit_2(tmp_path, capsys, command):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train:\n  lr: 1e-3\n  max_stepz: 3\n")
    assert main([command, str(cfg)]) == 2
    assert _error_line(capsys) == f"error: {cfg}: unknown key 'train.max_stepz'"


def test_bad_override_value_and_missing_file(tmp_path, capsys):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("train:\n  lr: 1e-3\n")
    assert main(["sft", str(cfg), "train.grad_accum=zero"]) == 2
    assert "train.grad_accum" in _error_line(capsys)
    assert main(["sft", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in _error_line(capsys)


def test_missing_data_file_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"model:\n  init_from: {tmp_path / 'model'}\ndata:\n  path: {tmp_path / 'none.jsonl'}\n")
    assert main(["sft", str(cfg)]) == 2
    assert "SFT data file not found" in _error_line(capsys)


def test_sft_from_the_command_line_then_resume_to_more_steps(tmp_path, capsys):
    model_dir = tmp_path / "model"
    tiny_llama().save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    data = tmp_path / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in addition_records(12)))
    out = tmp_path / "run" / "sft"
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"model:\n  init_from: {model_dir}\ndata:\n  path: {data}\n  batch_size: 4\n"
                   f"train:\n  out_dir: {out}\n  max_steps: 2\n  progress: false\n  tensorboard: false\n")
    assert main(["sft", str(cfg)]) == 0
    assert "sft: 2 steps" in capsys.readouterr().out
    assert main(["sft", str(cfg), "--resume", "train.max_steps=4"]) == 0
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3, 4]
    assert (out / "checkpoint" / "model.safetensors").is_file()
