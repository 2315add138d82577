"""r1lab backend over the compressed MLA cache: outputs equal full forward passes of the model."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import (  # noqa: F401  (autouse)
    greedy_by_full_forwards,
    single_thread,
    teacher_forced_logprobs,
    tiny_r1lab,
)

from r1lab.engine import SamplingParams, make_sampler
from r1lab.engine.r1lab_backend import R1labRunner

PROMPTS = [[3, 4, 5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]]


@pytest.fixture(scope="module")
def model():
    return tiny_r1lab(mtp_depth=0)


def test_prefill_and_decode_logits_equal_full_forward(model):
    runner = R1labRunner(model)
    with torch.inference_mode():
        state, logits = runner.prefill(PROMPTS, 16)
        for i, p in enumerate(PROMPTS):
            torch.testing.assert_close(logits[i], model(torch.tensor([p])).logits[0, -1], atol=1e-5, rtol=1e-5)
        logits = runner.decode(state, torch.tensor([20, 21, 22]))
        for i, p in enumerate(PROMPTS):
            ref = model(torch.tensor([p + [20 + i]])).logits[0, -1]
            torch.testing.assert_close(logits[i], ref, atol=1e-5, rtol=1e-5)


def test_greedy_equals_stepwise_argmax_of_full_forwards(model):
    out = make_sampler(model, None).generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=10))
    for prompt, (completion,) in zip(PROMPTS, out):
        assert completion.token_ids == greedy_by_full_forwards(model, prompt, 10)


@pytest.mark.parametrize("params", [SamplingParams(n=3, temperature=0.8, max_new_tokens=10),
                                    SamplingParams(n=2, temperature=1.0, min_p=0.05, max_new_tokens=10)])
def test_logprobs_equal_teacher_forced_forward(model, params):
    out = make_sampler(model, None).generate(PROMPTS, params)
    for prompt, group in zip(PROMPTS, out):
        for c in group:
            ref = teacher_forced_logprobs(model, prompt, c.token_ids, params.temperature)
            assert torch.allclose(torch.tensor(c.logprobs), ref, atol=1e-4, rtol=0)


def test_mixed_length_batch_equals_each_prompt_alone(model):
    sampler = make_sampler(model, None)
    params = SamplingParams(temperature=0, max_new_tokens=8)
    together = sampler.generate(PROMPTS, params)
    for prompt, (completion,) in zip(PROMPTS, together):
        assert sampler.generate([prompt], params)[0][0].token_ids == completion.token_ids


def test_finished_rows_leave_the_cache(model):
    sampler = make_sampler(model, None)
    free = sampler.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=6))
    stop_id = free[2][0].token_ids[0]
    sizes = []
    decode = sampler.runner.decode
    sampler.runner.decode = lambda state, tokens: (sizes.append(state.cache.batch_size), decode(state, tokens))[1]
    out = sampler.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=6, stop_token_ids=[stop_id]))
    n_stopped = sum(g[0].finish_reason == "stop" for g in out)
    assert out[2][0].token_ids == [stop_id] and n_stopped >= 1
    assert sizes[0] == 3 - sum(len(g[0].token_ids) == 1 for g in out)
    assert sizes[-1] == 3 - n_stopped


def test_seeded_determinism_and_moe_counts_untouched(model):
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=11)
    model.train()
    a = make_sampler(model, None).generate(PROMPTS, params)
    assert model.training
    counts = [moe.gate.load_counts.sum().item() for _, moe in model.moe_layers()]
    model.eval()
    b = make_sampler(model, None).generate(PROMPTS, params)
    assert [[c.token_ids for c in g] for g in a] == [[c.token_ids for c in g] for g in b]
    assert counts == [0.0] * len(counts)  # sampling does not feed the balance-bias statistics


def test_lean_two_token_step_and_mtp_draft_equal_the_model():
    """r1lab_step (decode/verify steps of plain and speculative decoding) against the model's own forwards:
    logits and hidden of a 2-token step at each row's own positions equal a full forward over prompt + 2 tokens;
    the MTP draft logits equal `mtp_forward` over the whole sequence at the last position."""
    from r1lab.engine import r1lab_step

    model = tiny_r1lab()  # with an MTP module
    runner = R1labRunner(model)
    new = torch.tensor([[20, 21], [22, 23], [24, 25]])
    with torch.inference_mode():
        pre = runner.prefill_full(PROMPTS, 16)
        pos = pre.lengths[:, None] + torch.arange(2)  # [3, 2]
        inputs = r1lab_step.step_inputs(model, pre.state.cache, pos, pre.state.span + 1)
        logits, hidden = r1lab_step.forward(model, new, inputs, pre.state.cache)
        for i, p in enumerate(PROMPTS):
            full = model(torch.tensor([p + new[i].tolist()]), return_hidden=True)
            torch.testing.assert_close(logits[i], full.logits[0, -2:], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(hidden[i], full.hidden[0, -2:], atol=1e-5, rtol=1e-5)
        # MTP over (h at the two new positions, the tokens after them); earlier MTP slots filled from the prompt
        after = torch.tensor([[26], [27], [28]])
        ids = torch.cat([pre.ids, torch.zeros(3, 2, dtype=torch.long)], dim=1)
        seqs = [p + new[i].tolist() + after[i].tolist() for i, p in enumerate(PROMPTS)]
        for i, s in enumerate(seqs):
            ids[i, : len(s) - 1] = torch.tensor(s[1:])  # token after each position
        model.mtp_forward(pre.hidden, ids[:, : pre.hidden.shape[1]], positions=pre.positions, cache=pre.state.cache)
        both = inputs.upto(torch.ones(3, dtype=torch.long), model.config.n_heads)  # the last query's bias only
        next_ids = torch.cat([new[:, 1:], after], dim=1)
        drafts = [r1lab_step.mtp_last(model, hidden, next_ids, both, pre.state.cache),
                  r1lab_step.mtp_last(model, hidden, next_ids, both, pre.state.cache, r1lab_step.normed_embeddings(model))]
        for i, s in enumerate(seqs):
            full = model(torch.tensor([s[:-1]]), return_hidden=True)
            ref, _ = model.mtp_forward(full.hidden, torch.tensor([s[1:]]))
            for draft, _ in drafts:
                torch.testing.assert_close(draft[i], ref[0, -1], atol=1e-5, rtol=1e-5)
