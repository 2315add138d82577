"""Pretraining on the tiny preset: the loss falls, MoE balance is tracked, checkpoints reload as the model."""

from __future__ import annotations

import json

import pytest
import torch

from r1lab.data import build_corpus
from r1lab.data.tokenizer import load_tokenizer
from r1lab.model import Transformer
from r1lab.train import TrainConfig
from r1lab.train.core.metrics_log import read_metrics
from r1lab.train.core.model_spec import ModelSpec
from r1lab.train.core.moe_metrics import moe_metrics
from r1lab.train.stages.packing import epoch_order, global_rows, stream_rows
from r1lab.train.stages.pretrain import (
    CorpusConfig,
    PretrainConfig,
    PretrainStage,
    QualityGate,
    pretrain,
    tokenize_documents,
)

SMALL_TINY = dict(dim=64, inter_dim=128, moe_inter_dim=32, n_layers=2, q_lora_rank=32, kv_lora_rank=32,
                  qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)


def test_rows_cover_each_epoch_once_in_a_seeded_order():
    rows = stream_rows(torch.arange(23), 4)
    assert rows.shape == (5, 4) and rows[1].tolist() == [4, 5, 6, 7]
    stage = PretrainStage(rows, batch_size=1, grad_accum=1, seed=0)
    first = [int(stage.next_batch(s, 0)[0, 0]) // 4 for s in range(5)]
    second = [int(stage.next_batch(s, 0)[0, 0]) // 4 for s in range(5, 10)]
    assert sorted(first) == sorted(second) == [0, 1, 2, 3, 4]
    assert first == epoch_order(5, 0, 0).tolist() and second == epoch_order(5, 0, 1).tolist()
    assert list(global_rows(2, 1, grad_accum=3, batch_size=4)) == [28, 29, 30, 31]


def test_moe_metrics_from_routing_stats():
    m = moe_metrics([{"layer": 1, "load": [3, 1, 0, 0], "max_vio": 2.0, "dead_experts": 2},
                     {"layer": 2, "load": [1, 1, 1, 1], "max_vio": 0.0, "dead_experts": 0}])
    assert m["moe/load/L1"] == [0.75, 0.25, 0.0, 0.0] and m["moe/max_vio"] == 1.0
    assert m["moe/max_vio_max"] == 2.0 and m["moe/dead_experts"] == 2.0


def test_tiny_preset_pretraining_loss_falls_and_reloads(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in build_corpus("arith", 200, seed=0)))
    cfg = PretrainConfig(
        model=ModelSpec(preset="tiny", overrides={"max_seq_len": 64, "original_seq_len": 64}),
        data=CorpusConfig(path=str(corpus), seq_len=64, batch_size=8, vocab_size=300),
        train=TrainConfig(out_dir=str(tmp_path / "pretrain"), max_steps=40, lr=3e-3, warmup_steps=4,
                          progress=False, tensorboard=False, save_every=20))
    result = pretrain(cfg)
    rows = read_metrics(tmp_path / "pretrain")
    assert len(rows) == 40
    assert sum(r["ce_loss"] for r in rows[-5:]) / 5 < 0.6 * rows[0]["ce_loss"]
    assert {"mtp_loss", "balance_loss", "moe/max_vio", "moe/load/L1"} <= set(rows[-1])
    assert len(rows[-1]["moe/load/L1"]) == 8 and sum(rows[-1]["moe/load/L1"]) == pytest.approx(1.0)
    # the checkpoint reloads as the trained model, with the tokenizer trained on the corpus next to it
    back = Transformer.from_pretrained(result.checkpoint)
    tok = load_tokenizer(str(result.checkpoint))
    docs = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    rows_ = stream_rows(tokenize_documents(docs, tok), 64)[:16]
    with torch.no_grad():
        reloaded = back(rows_, labels=rows_).main_loss.item()
    assert reloaded < 0.6 * rows[0]["ce_loss"]


def test_balance_bias_moves_towards_underloaded_experts():
    torch.manual_seed(0)
    spec = ModelSpec(preset="tiny", overrides={**SMALL_TINY, "vocab_size": 32})
    from r1lab.train.core.model_spec import build_model

    model, _ = build_model(spec)
    stage = PretrainStage(torch.randint(3, 32, (8, 16)), batch_size=4, grad_accum=1, seed=0, balance_gamma=0.01)
    model(stage.next_batch(0, 0), labels=stage.next_batch(0, 0))
    counts = {i: moe.gate.load_counts.clone() for i, moe in model.moe_layers()}
    before = {i: moe.gate.e_score_correction_bias.clone() for i, moe in model.moe_layers()}
    metrics = stage.after_step(model, 1, {})
    for i, moe in model.moe_layers():
        delta = moe.gate.e_score_correction_bias - before[i]
        c = counts[i]
        assert torch.all(delta[c > c.mean()] < 0) and torch.all(delta[c < c.mean()] > 0)
        assert moe.gate.load_counts.sum() == 0                       # counts consumed
    assert metrics["moe/max_vio"] > 0


def _small_pretrain(tmp_path, gate, max_steps=12):
    tmp_path.mkdir(parents=True, exist_ok=True)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in build_corpus("arith", 60, seed=0)))
    return PretrainConfig(
        model=ModelSpec(preset="tiny", overrides={**SMALL_TINY, "max_seq_len": 64, "original_seq_len": 64}),
        data=CorpusConfig(path=str(corpus), seq_len=64, batch_size=4, vocab_size=300), stop_at=gate,
        train=TrainConfig(out_dir=str(tmp_path / "pretrain"), max_steps=max_steps, lr=3e-3, progress=False,
                          tensorboard=False))


def test_the_quality_gate_checks_validation_problems_and_stops_at_the_first_check_that_reaches_it(tmp_path):
    # an unreachable gate: every check is logged, the whole budget runs
    never = QualityGate(pass_at_1=1.0, every=4, start=4, task="arith", size=3, n=1, max_new_tokens=8)
    result = pretrain(_small_pretrain(tmp_path / "never", never))
    rows = read_metrics(tmp_path / "never" / "pretrain")
    assert result.step == 12
    assert [r["step"] for r in rows if "validation/pass@1" in r] == [4, 8, 12]
    assert all(0.0 <= r["validation/pass@1"] < 1.0 for r in rows if "validation/pass@1" in r)
    # the smallest gate (any solved problem) with a check scored at or above it stops there
    stage = PretrainStage(torch.zeros(4, 8, dtype=torch.long), batch_size=1, grad_accum=1, seed=0,
                          gate=QualityGate(pass_at_1=0.5, every=2, task="arith"))
    stage.reached = 0.5
    assert "0.500" in stage.should_stop()
    assert PretrainStage(torch.zeros(4, 8, dtype=torch.long), batch_size=1, grad_accum=1, seed=0).should_stop() is None


def test_the_quality_gate_leaves_training_unchanged_until_it_stops(tmp_path):
    """The checks sample with their own RNG: a gated run's weights equal an ungated run's at the same step."""
    torch.manual_seed(0)
    gated = pretrain(_small_pretrain(tmp_path / "gated", QualityGate(pass_at_1=1.0, every=3, task="arith", size=2,
                                                                     n=1, max_new_tokens=8), max_steps=6))
    torch.manual_seed(0)
    plain = pretrain(_small_pretrain(tmp_path / "plain", None, max_steps=6))
    a, b = Transformer.from_pretrained(gated.checkpoint), Transformer.from_pretrained(plain.checkpoint)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_a_quality_gate_without_a_task_is_refused_before_any_step(tmp_path):
    from r1lab.errors import ConfigError

    with pytest.raises(ConfigError, match="stop_at.task"):
        pretrain(_small_pretrain(tmp_path, QualityGate(pass_at_1=0.5)))
    assert not (tmp_path / "pretrain" / "metrics.jsonl").exists()
