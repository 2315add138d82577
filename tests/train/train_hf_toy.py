"""A tiny Hugging Face causal LM and word-level tokenizer, built offline, for SFT and distillation tests."""

from __future__ import annotations

import torch

WORDS = ["<pad>", "<bos>", "<eos>", "<think>", "</think>", "<answer>", "</answer>"] + \
    [str(i) for i in range(10)] + ["+", "=", "what", "is", "?", "so"]


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")


def tiny_llama(seed: int = 0, vocab: int = len(WORDS)):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    return LlamaForCausalLM(cfg)


def addition_records(n: int = 24, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        a, b = (int(x) for x in torch.randint(0, 5, (2,), generator=g))
        out.append({"prompt": f"what is {a} + {b} ? <think>",
                    "completion": f"{a} + {b} = {a + b} </think> <answer> {a + b} </answer>"})
    return out
