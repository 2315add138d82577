"""bf16 mixed-precision RL: the engine samples in bf16 and the reference pass autocasts, like the policy's forward."""

from __future__ import annotations

import pytest
import torch
from train_hf_toy import addition_records, tiny_llama, tiny_tokenizer

from r1lab.train.rl import RLConfig, RLStage, frozen_copy, rollout_dtype


@pytest.mark.parametrize(("dtype", "precision", "expected"), [
    ("auto", "fp32", None), ("auto", "bf16", torch.bfloat16), ("bf16", "fp32", torch.bfloat16), ("fp32", "bf16", None)])
def test_rollout_dtype_follows_training_precision_unless_set(dtype, precision, expected):
    assert rollout_dtype(dtype, precision) == expected


def stage(tmp_path, precision: str) -> RLStage:
    model, tok = tiny_llama(), tiny_tokenizer()
    cfg = RLConfig.model_validate({
        "rollout": {"prompts_per_step": 2, "group_size": 2, "max_new_tokens": 4},
        "rewards": [{"name": "length"}], "objective": {"beta": 0.04},
        "train": {"out_dir": str(tmp_path), "precision": precision, "progress": False, "tensorboard": False}})
    records = [{"id": str(i), "prompt": r["prompt"], "answer": "", "task": "toy", "metadata": {}}
               for i, r in enumerate(addition_records(4))]
    return RLStage(cfg, model, tok, records, reference=frozen_copy(model))


def test_bf16_training_samples_with_a_bf16_engine_and_autocasts_the_reference(tmp_path, monkeypatch):
    st = stage(tmp_path / "bf16", "bf16")
    assert st.sampler.runner.compute_dtype == torch.bfloat16
    assert stage(tmp_path / "fp32", "fp32").sampler.runner.compute_dtype is None
    seen = []
    body = st.reference.model  # the decoder the packed log-prob pass runs
    forward = body.forward

    def spy(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        return forward(*args, **kwargs)

    monkeypatch.setattr(body, "forward", spy)
    rollout = st.collector.collect(0)
    assert seen and all(seen)  # every reference forward ran under bf16 autocast
    assert rollout.tensors["ref_logp"].dtype == torch.float32
