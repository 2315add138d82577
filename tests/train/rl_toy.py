"""A toy RL setting that learns in seconds on CPU: a character tokenizer, a tiny randomly initialised
causal LM and a reward (share of 'a' characters) that the policy can learn from its own samples."""

from __future__ import annotations

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from r1lab.train.rl import RLConfig


def char_tokenizer(chars: str = "abc?") -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def tiny_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      pad_token_id=0, eos_token_id=1, bos_token_id=None, tie_word_embeddings=False)
    return LlamaForCausalLM(cfg)


def tiny_r1lab(vocab_size: int, seed: int = 0):
    """A two-layer DeepSeek-V3 (MLA + one MoE layer with 4 routed experts), no MTP."""
    from r1lab.model import ModelConfig, Transformer

    torch.manual_seed(seed)
    cfg = ModelConfig.from_preset(
        "tiny", vocab_size=vocab_size, dim=32, n_layers=2, n_dense_layers=1, inter_dim=64, n_heads=2,
        q_lora_rank=16, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, moe_inter_dim=16,
        n_routed_experts=4, n_activated_experts=2, n_expert_groups=1, n_limited_groups=1, mtp_depth=0,
        max_seq_len=64, original_seq_len=64, pad_token_id=0, eos_token_id=1)
    return Transformer(cfg)


def share_of_a(completions, **_):
    return [t.count("a") / max(len(t), 1) for t in completions]


def all_a(completions, **_):
    """Binary: 1 when the completion is non-empty and only 'a's (groups are often all-0 early on)."""
    return [float(len(t) > 0 and set(t) == {"a"}) for t in completions]


REWARDS = {"share_of_a": share_of_a, "all_a": all_a}


def records(n: int = 16) -> list[dict]:
    return [{"id": str(i), "prompt": "?" * (1 + i % 3), "answer": "", "task": "toy", "metadata": {}} for i in range(n)]


def config(out_dir, **over) -> RLConfig:
    train = {"out_dir": str(out_dir), "lr": 1e-2, "schedule": "constant", "progress": False,
             "tensorboard": False, "seed": 0, **over.pop("train", {})}
    rollout = {"prompts_per_step": 8, "group_size": 4, "max_new_tokens": 8, **over.pop("rollout", {})}
    data = {"template": "plain", "think_prefill": False}
    return RLConfig.model_validate({"data": data, "rollout": rollout, "rewards": [{"name": "share_of_a"}],
                                    "train": train, **over})
