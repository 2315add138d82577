"""Tiny models and a character tokenizer for engine tests (imported by the test modules)."""

from __future__ import annotations

import pytest
import torch

CHARS = "abcdefghijklmnopqrstuvwxyz .,"


def char_tokenizer():
    """One token per character; `<pad>` = 0, `<eos>` = 1 (31 tokens)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1}
    for c in CHARS:
        vocab[c] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")


VOCAB = 2 + len(CHARS)


def tiny_llama(vocab_size: int = VOCAB, seed: int = 0, model_type: str = "llama"):
    """A randomly initialised 2-layer Llama (GQA 4:2) or Qwen2 (q/k/v biases) in eval mode."""
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(seed)
    if model_type == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
        with torch.no_grad():  # random (non-zero) biases so the fused QKV bias is exercised
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.5)
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
    with torch.no_grad():  # larger logits than the default init, so samples are far from uniform
        model.lm_head.weight.mul_(20)
    return model.eval()


def tiny_r1lab(vocab_size: int = VOCAB, seed: int = 0, **overrides):
    """The r1lab tiny preset shrunk for tests (MLA with q-LoRA, MoE, MTP depth 1)."""
    from r1lab.model import ModelConfig, Transformer

    base = dict(vocab_size=vocab_size, dim=64, inter_dim=96, moe_inter_dim=32, n_layers=3, kv_lora_rank=32,
                q_lora_rank=48, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, max_seq_len=128,
                original_seq_len=128, init_std=0.1, eos_token_id=None)
    base.update(overrides)
    torch.manual_seed(seed)
    return Transformer(ModelConfig.from_preset("tiny", **base)).eval()


def next_logits(model, ids: list[int]) -> torch.Tensor:
    """Full forward (no cache) over `ids`; logits of the last position [V]."""
    with torch.no_grad():
        out = model(torch.tensor([ids]))
    return getattr(out, "logits", out)[0, -1].float()


def greedy_by_full_forwards(model, prompt: list[int], steps: int) -> list[int]:
    seq = list(prompt)
    for _ in range(steps):
        seq.append(int(next_logits(model, seq).argmax()))
    return seq[len(prompt):]


def teacher_forced_logprobs(model, prompt: list[int], completion: list[int], temperature: float) -> torch.Tensor:
    """log_softmax(logits / T) of each completion token under one full forward pass.  -> [len(completion)]"""
    with torch.no_grad():
        out = model(torch.tensor([prompt + completion]))
    logits = getattr(out, "logits", out)[0, len(prompt) - 1 : -1].float()
    lp = torch.log_softmax(logits / (temperature or 1.0), dim=-1)
    return lp.gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny models run fastest on one thread, and on a shared 2-core machine a second OpenMP thread that waits
    for a busy core can slow small ops down many times over. Import this fixture into each test module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
