"""MTP speculative decoding: greedy output identical to plain greedy; sampled tokens follow the plain
sampling distribution (checked against exact marginals by enumeration); a trained MTP gets accepted."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch
from engine_fixtures import single_thread, tiny_r1lab  # noqa: F401  (autouse)

from r1lab.engine import SamplingParams, make_sampler
from r1lab.engine.sampling import model_logprobs, policy_logprobs

PROMPTS = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12, 13]]


DRAFTS = [1, 2, 3]  # MTP drafts per verify step (the 2nd and 3rd chain the module)


def plain_and_speculative(model, prompts, num_drafts=3, **kw):
    sampler = make_sampler(model, None)
    sampler.num_drafts = num_drafts
    plain = sampler.generate(prompts, SamplingParams(speculative=False, **kw))
    spec = sampler.generate(prompts, SamplingParams(speculative=True, **kw))
    return plain, spec, sampler.last_acceptance


@pytest.mark.parametrize("num_drafts", DRAFTS)
def test_greedy_speculative_equals_plain_greedy_with_an_untrained_drafter(num_drafts):
    plain, spec, acceptance = plain_and_speculative(tiny_r1lab(), PROMPTS, num_drafts, temperature=0, max_new_tokens=12)
    assert [g[0].token_ids for g in spec] == [g[0].token_ids for g in plain]
    for a, b in zip(plain, spec):
        assert torch.allclose(torch.tensor(a[0].logprobs), torch.tensor(b[0].logprobs), atol=1e-4)
    assert acceptance is not None and 0 <= acceptance <= 1


_EXACT: dict = {}  # enumeration is the slow part: once per (model, prompt, policy, steps)


def exact_marginals(model, prompt, params, steps):
    """Exact per-position token marginals of plain sampling, by enumerating every prefix (tiny vocab)."""
    key = (id(model), tuple(prompt), params.temperature, params.top_k, steps)
    if key not in _EXACT:
        _EXACT[key] = _enumerate_marginals(model, prompt, params, steps)
    return _EXACT[key]


def _enumerate_marginals(model, prompt, params, steps):
    V = model.config.vocab_size
    marginals = []
    prefix_probs = {(): 1.0}
    for _ in range(steps):
        m = torch.zeros(V, dtype=torch.float64)
        nxt = {}
        for prefix, w in prefix_probs.items():
            with torch.no_grad():
                logits = model(torch.tensor([prompt + list(prefix)])).logits[0, -1:]
            p = policy_logprobs(model_logprobs(logits, params.temperature), params).exp()[0].double()
            m += w * p
            for t in p.nonzero().squeeze(-1).tolist():
                nxt[prefix + (t,)] = w * float(p[t])
        marginals.append(m)
        prefix_probs = nxt
    return marginals


@functools.cache
def _small_vocab_model():
    return tiny_r1lab(vocab_size=6, seed=1, init_std=0.1)


@pytest.mark.parametrize("num_drafts", DRAFTS)
@pytest.mark.parametrize("params", [SamplingParams(temperature=1.0), SamplingParams(temperature=0.8, top_k=4)])
def test_speculative_sampling_has_the_plain_sampling_distribution(params, num_drafts):
    """5 tokens: the prompt pass, then iterations of up to num_drafts + 1 tokens (every accept/reject path)."""
    model = _small_vocab_model()
    prompt, steps, n = [1, 2, 3], 5, 3000
    params.n, params.max_new_tokens, params.speculative, params.seed = n, steps, True, 5
    sampler = make_sampler(model, None, max_batch_rows=n)
    sampler.num_drafts = num_drafts
    out = sampler.generate([prompt], params)[0]
    assert 0.05 < sampler.last_acceptance < 0.95  # both the accept and the residual path are exercised
    exact = exact_marginals(model, prompt, params, steps)
    for i in range(steps):
        counts = torch.bincount(torch.tensor([c.token_ids[i] for c in out]), minlength=6).double()
        tolerance = 4.5 * (exact[i] * (1 - exact[i]) / n).sqrt() + 1e-3  # ~4.5 sigma per cell
        assert ((counts / n - exact[i]).abs() <= tolerance).all(), (i, counts / n, exact[i])


def train_periodic(model, period=(3, 7, 4, 9, 5), steps=40, length=16, seed=0):
    """Fit main model and MTP module to a periodic token stream (acceptance should approach 1)."""
    g = torch.Generator().manual_seed(seed)
    pattern = torch.tensor(period)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        phase = torch.randint(0, len(period), (8, 1), generator=g)
        ids = pattern[(phase + torch.arange(length)) % len(period)]
        loss = model(ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def periodic_model():
    return train_periodic(tiny_r1lab(vocab_size=16))


@pytest.mark.parametrize("num_drafts", DRAFTS)
def test_trained_drafter_is_accepted_and_output_unchanged(periodic_model, num_drafts):
    prompts = [[3, 7, 4], [9, 5, 3, 7, 4, 9], [4, 9]]
    plain, spec, acceptance = plain_and_speculative(periodic_model, prompts, num_drafts, temperature=0,
                                                    max_new_tokens=16)
    assert [g[0].token_ids for g in spec] == [g[0].token_ids for g in plain]
    assert acceptance > 0.9
    _, _, sampled_acceptance = plain_and_speculative(periodic_model, prompts, num_drafts, temperature=1.0,
                                                     max_new_tokens=16, n=4)
    assert sampled_acceptance > 0.8


def test_chained_drafts_of_a_trained_drafter_cut_the_verify_steps(periodic_model):
    """On a periodic stream the chained drafts are accepted too: 3 drafts need well under half the steps of 1."""
    sampler = make_sampler(periodic_model, None)
    steps = {}
    for k in (1, 3):
        sampler.num_drafts = k
        sampler.generate([[3, 7, 4]], SamplingParams(temperature=0, max_new_tokens=32, speculative=True))
        steps[k] = sampler.last_draft_stats["steps"]
        assert sampler.last_draft_stats["accepted_tokens"] > 0.9 * sampler.last_draft_stats["draft_tokens"]
    assert steps[3] < 0.6 * steps[1]


@pytest.mark.parametrize("num_drafts", DRAFTS)
def test_speculative_respects_stop_tokens_and_length_limits(num_drafts):
    model = tiny_r1lab()
    plain, spec, _ = plain_and_speculative(model, PROMPTS, num_drafts, temperature=0, max_new_tokens=7)
    stop_id = plain[0][0].token_ids[3]
    plain2, spec2, _ = plain_and_speculative(model, PROMPTS, num_drafts, temperature=0, max_new_tokens=7,
                                             stop_token_ids=[stop_id])
    for a, b in itertools.chain(zip(plain, spec), zip(plain2, spec2)):
        assert a[0].token_ids == b[0].token_ids and a[0].finish_reason == b[0].finish_reason
        assert len(b[0].token_ids) <= 7 and len(b[0].logprobs) == len(b[0].token_ids)


def test_streaming_and_stop_strings_take_the_per_token_path_with_the_same_output():
    """Streaming and stop strings emit the two tokens of an iteration one at a time; the result is the same."""
    from engine_fixtures import char_tokenizer

    model = tiny_r1lab()
    sampler = make_sampler(model, char_tokenizer())
    params = dict(temperature=1.0, max_new_tokens=12, n=2, seed=3, speculative=True)
    fast = sampler.generate(PROMPTS, SamplingParams(**params))
    streamed: dict[int, list[int]] = {}
    slow = sampler.generate(PROMPTS, SamplingParams(**params),
                            on_tokens=lambda rows, toks: [streamed.setdefault(r, []).append(t) for r, t in zip(rows, toks)])
    assert [[c.token_ids for c in g] for g in slow] == [[c.token_ids for c in g] for g in fast]
    assert [streamed[i * 2 + j] for i in range(len(PROMPTS)) for j in range(2)] == [c.token_ids for g in fast for c in g]
    greedy = dict(temperature=0, max_new_tokens=12)
    stop = sampler.generate(PROMPTS[1:2], SamplingParams(**greedy))[0][0].text[2:4]  # seen after a few tokens
    plain = sampler.generate(PROMPTS, SamplingParams(stop=[stop], speculative=False, **greedy))
    spec = sampler.generate(PROMPTS, SamplingParams(stop=[stop], speculative=True, **greedy))
    assert plain[1][0].finish_reason == "stop" and plain[1][0].text.endswith(stop)
    assert [(g[0].token_ids, g[0].finish_reason) for g in spec] == [(g[0].token_ids, g[0].finish_reason) for g in plain]
