"""`r1lab rl CONFIG` then `r1lab sample CONFIG` on its checkpoint, with the registered rewards (accuracy + format)
on the arithmetic task: the RL stage and rejection sampling as a user drives them."""

from __future__ import annotations

import json

from rl_toy import char_tokenizer, tiny_llama

from r1lab.cli import main
from r1lab.train.core.metrics_log import read_metrics

CHARS = "0123456789+-=?\n<>/abcdefghijklmnopqrstuvwxyz "


def test_rl_then_rejection_sampling_from_the_command_line(tmp_path, capsys):
    tok = char_tokenizer(CHARS)
    model_dir = tmp_path / "model"
    tiny_llama(len(tok)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = tmp_path / "run" / "rl"
    rl_cfg = tmp_path / "rl.yaml"
    rl_cfg.write_text(
        f"model:\n  init_from: {model_dir}\npreset: dapo\nobjective:\n  dynamic_sampling: false\n"
        "data:\n  task: arith\n  size: 8\nrollout:\n  prompts_per_step: 4\n  group_size: 2\n  max_new_tokens: 8\n"
        f"num_rollouts: 2\ntrain:\n  out_dir: {out}\n  progress: false\n  tensorboard: false\n")
    assert main(["rl", str(rl_cfg)]) == 0
    assert "rl: 2 steps" in capsys.readouterr().out
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert {"rewards/accuracy/mean", "rewards/format/mean", "rewards/overlong/mean", "frac_reward_zero_std"} <= set(rows[0])
    assert (out / "checkpoint" / "tokenizer.json").is_file()

    data = tmp_path / "rs.jsonl"
    s_cfg = tmp_path / "sample.yaml"
    s_cfg.write_text(f"checkpoint: {out / 'checkpoint'}\nn: 2\nmax_new_tokens: 8\n"
                     f"data:\n  task: arith\n  size: 3\nout: {data}\n")
    assert main(["sample", str(s_cfg)]) == 0
    summary = json.loads(data.with_suffix(".summary.json").read_text())
    assert summary["counts"]["sampled"] == 6 and summary["checkpoint"] == str(out / "checkpoint")
    assert len(data.read_text().splitlines()) == summary["counts"]["kept"]
