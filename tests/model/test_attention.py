"""MLA: the absorbed form over the compressed cache equals the naive form (fp32, <= 1e-5)."""

import pytest
import torch
from conftest import tiny_config

from r1lab.model import Transformer
from r1lab.model.accounting import kv_cache_elements_per_token, model_stats
from r1lab.model.attention import MLA, build_attention_mask
from r1lab.model.rope import rope_cos_sin, rope_inv_freq

TOL = 1e-5


@pytest.mark.parametrize("overrides", [{}, {"q_lora_rank": 0},
                                       {"rope_yarn": True, "rope_factor": 4.0, "original_seq_len": 16}])
@pytest.mark.parametrize("start", [0, 1, 5, 17])
def test_absorbed_equals_naive_for_one_layer(overrides, start):
    torch.manual_seed(start)
    cfg = tiny_config(**overrides)
    mla = MLA(cfg, layer=0)
    for p in mla.parameters():
        torch.nn.init.normal_(p, std=0.2)
    B, S = 2, 6
    T = start + S
    x = torch.randn(B, T, cfg.dim)
    pos = torch.arange(T).expand(B, T)
    cos, sin = rope_cos_sin(rope_inv_freq(cfg), pos, 1.0)
    with torch.no_grad():
        naive = mla(x, cos, sin, None)  # plain causal over all T tokens
        cache = Transformer(cfg).new_cache(B, 32)
        if start:  # prefill the first `start` tokens, then one chunk of S through the absorbed form
            cache.mark(pos[:, :start], None)
            mla(x[:, :start], cos[:, :start], sin[:, :start],
                build_attention_mask(pos[:, :start], torch.arange(start), cache.valid[:, :start]), cache, pos[:, :start])
        cache.mark(pos[:, start:], None)
        mask = build_attention_mask(pos[:, start:], torch.arange(T), cache.valid[:, :T])
        absorbed = mla(x[:, start:], cos[:, start:], sin[:, start:], mask, cache, pos[:, start:])
    assert (absorbed - naive[:, start:]).abs().max() <= TOL * max(1.0, naive.abs().max())


def test_model_decoding_token_by_token_matches_full_forward(tiny_model):
    x = torch.randint(1, 64, (3, 24))
    with torch.no_grad():
        full = tiny_model(x).logits
        cache = tiny_model.new_cache(3, 32)
        steps = [tiny_model(x[:, :9], cache=cache).logits]
        steps += [tiny_model(x[:, t:t + 1], cache=cache).logits for t in range(9, 24)]
    assert (torch.cat(steps, 1) - full).abs().max() <= TOL


def test_left_padded_batched_prefill_matches_unpadded_rows(tiny_model):
    """Rows of different lengths left-padded into one batch: each row's logits equal its own unpadded run."""
    torch.manual_seed(3)
    rows = [torch.randint(1, 64, (n,)) for n in (7, 12, 4)]
    T = max(len(r) for r in rows)
    ids = torch.zeros(3, T, dtype=torch.long)
    key_mask = torch.zeros(3, T, dtype=torch.bool)
    for b, r in enumerate(rows):
        ids[b, T - len(r):] = r
        key_mask[b, T - len(r):] = True
    positions = torch.arange(T).expand(3, T)
    with torch.no_grad():
        cache = tiny_model.new_cache(3, 32)
        prefill = tiny_model(ids, cache=cache, key_mask=key_mask, positions=positions).logits
        nxt = torch.randint(1, 64, (3, 1))
        step = tiny_model(nxt, cache=cache, positions=torch.full((3, 1), T)).logits
        naive = tiny_model(ids, key_mask=key_mask, positions=positions).logits
        for b, r in enumerate(rows):
            alone = tiny_model(torch.cat([r, nxt[b]]).unsqueeze(0)).logits[0]
            assert (prefill[b, T - len(r):] - alone[: len(r)]).abs().max() <= TOL
            assert (naive[b, T - len(r):] - alone[: len(r)]).abs().max() <= TOL
            assert (step[b, 0] - alone[len(r)]).abs().max() <= TOL
    assert torch.isfinite(prefill).all()


def test_cache_select_and_repeat_interleave(tiny_model):
    prompt = torch.randint(1, 64, (2, 5))
    with torch.no_grad():
        cache = tiny_model.new_cache(2, 16)
        tiny_model(prompt, cache=cache)
        cache.repeat_interleave(3)  # rows: p0 p0 p0 p1 p1 p1
        nxt = torch.randint(1, 64, (6, 1))
        out = tiny_model(nxt, cache=cache).logits
        full = tiny_model(torch.cat([prompt.repeat_interleave(3, 0), nxt], 1)).logits[:, -1:]
        assert (out - full).abs().max() <= TOL
        cache.select([1, 4])
        nxt2 = torch.randint(1, 64, (2, 1))
        out2 = tiny_model(nxt2, cache=cache).logits
        ref = torch.cat([prompt.repeat_interleave(3, 0), nxt, ], 1)[[1, 4]]
        full2 = tiny_model(torch.cat([ref, nxt2], 1)).logits[:, -1:]
    assert cache.batch_size == 2
    assert (out2 - full2).abs().max() <= TOL


def test_kv_bytes_per_token_formula():
    cfg = tiny_config()
    elems = kv_cache_elements_per_token(cfg)
    assert elems["mla"] == (cfg.kv_lora_rank + cfg.qk_rope_head_dim) * cfg.n_layers
    assert elems["mha"] == 2 * cfg.n_heads * cfg.v_head_dim * cfg.n_layers
    cache = Transformer(cfg).new_cache(1, 4)  # also holds the MTP module's layer
    assert cache.bytes_per_token() == 4 * (cfg.kv_lora_rank + cfg.qk_rope_head_dim) * (cfg.n_layers + cfg.mtp_depth)
    v3 = model_stats(tiny_config().from_preset("deepseek-v3"))
    assert v3["kv_bytes_per_token_mla"] == 576 * 61 * 2  # 68.6 KiB in bf16
    assert v3["kv_bytes_per_token_mha"] == 2 * 128 * 128 * 61 * 2  # 3.81 MiB
    assert 0.017 < v3["kv_mla_over_mha"] < 0.018
