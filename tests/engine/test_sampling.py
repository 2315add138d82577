"""Sampling math: truncations in closed form, inverse-CDF frequencies, the two log-prob flavours, streams."""

from __future__ import annotations

import math

import pytest
import torch

from r1lab.engine import SamplingParams
from r1lab.engine.randomness import row_seed, row_uniforms
from r1lab.engine.sampling import (
    apply_min_p,
    apply_top_k,
    apply_top_p,
    model_logprobs,
    policy_logprobs,
    sample_from_probs,
    sample_tokens,
)
from r1lab.errors import ConfigError

PROBS = torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]])
LOGP = PROBS.log()


def kept(lp: torch.Tensor) -> list[int]:
    return torch.isfinite(lp[0]).nonzero().squeeze(-1).tolist()


def test_top_k_keeps_k_most_likely():
    assert kept(apply_top_k(LOGP, 2)) == [0, 1]
    assert kept(apply_top_k(LOGP, 0)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("p, expected", [(0.5, [0]), (0.6, [0, 1]), (0.7, [0, 1]), (0.71, [0, 1, 2]),
                                         (0.95, [0, 1, 2, 3]), (1.0, [0, 1, 2, 3, 4])])
def test_top_p_keeps_smallest_set_reaching_p(p, expected):
    assert kept(apply_top_p(LOGP, p)) == expected


def test_top_p_is_order_independent():
    perm = torch.tensor([3, 0, 4, 2, 1])
    assert sorted(perm[kept(apply_top_p(LOGP[:, perm], 0.71))].tolist()) == [0, 1, 2]


def test_min_p_relative_to_top_token():
    # threshold 0.3 * 0.5 = 0.15: tokens with p >= 0.15 survive
    assert kept(apply_min_p(LOGP, 0.3)) == [0, 1, 2]


def test_policy_renormalises_and_model_logprobs_use_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    lp = model_logprobs(logits, 0.5)
    torch.testing.assert_close(lp, torch.log_softmax(logits / 0.5, -1))
    pol = policy_logprobs(lp, SamplingParams(top_k=2, temperature=0.5))
    e = torch.exp(torch.tensor([4.0, 2.0]))
    torch.testing.assert_close(pol[0, :2].exp(), e / e.sum())
    assert pol[0, 2:].exp().sum() == 0
    assert policy_logprobs(lp, SamplingParams(temperature=0.5)) is lp  # no truncation: same distribution


def test_inverse_cdf_matches_probabilities_on_a_uniform_grid():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    u = (torch.arange(1000) + 0.5) / 1000
    tokens = sample_from_probs(probs.expand(1000, 4), u)
    freq = torch.bincount(tokens, minlength=4).float() / 1000
    torch.testing.assert_close(freq, probs, atol=2e-3, rtol=0)
    # u at the very top never returns a zero-probability token, unnormalised input works
    assert sample_from_probs(torch.tensor([[2.0, 6.0, 0.0]]), torch.tensor([0.999999999])).item() == 1


def test_sample_tokens_reports_model_and_policy_logprobs():
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    params = SamplingParams(temperature=0.7, top_p=0.8)
    tokens, lp, plp = sample_tokens(logits, params, torch.rand(4))
    ref = torch.log_softmax(logits / 0.7, -1).gather(-1, tokens[:, None]).squeeze(-1)
    torch.testing.assert_close(lp, ref)
    assert (plp >= lp).all()  # renormalising over a truncated set can only raise a kept token's probability
    g_tokens, g_lp, g_plp = sample_tokens(logits, SamplingParams(temperature=0), torch.rand(4))
    assert g_tokens.tolist() == logits.argmax(-1).tolist()
    torch.testing.assert_close(g_lp, torch.log_softmax(logits, -1).max(-1).values)
    assert g_plp.abs().max() == 0


def test_row_streams_depend_only_on_their_key():
    a = row_uniforms(7, [(0, 0), (0, 1), (3, 2)], steps=5)
    b = row_uniforms(7, [(3, 2)], steps=5)
    torch.testing.assert_close(a[2], b[0])
    assert not torch.equal(a[0], a[1])
    assert row_seed(7, 0, 0) != row_seed(8, 0, 0)
    assert ((a >= 0) & (a < 1)).all()


@pytest.mark.parametrize("bad", [dict(n=0), dict(temperature=-1), dict(top_p=0), dict(top_k=-1), dict(min_p=1.0),
                                 dict(max_new_tokens=0), dict(stop=[""])])
def test_invalid_params_raise_one_line_config_error(bad):
    with pytest.raises(ConfigError, match=r"SamplingParams\.\w+: expected"):
        SamplingParams(**bad)


def test_stop_string_shorthand():
    assert SamplingParams(stop="</answer>").stop == ["</answer>"]
    assert math.isclose(SamplingParams().temperature, 1.0)
