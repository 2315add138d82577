"""HF backend: the lean Llama runner reproduces the HF forward; the decode loop's outputs are the model's."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import (  # noqa: F401  (autouse)
    greedy_by_full_forwards,
    single_thread,
    teacher_forced_logprobs,
    tiny_llama,
)

from r1lab.engine import SamplingParams, make_sampler
from r1lab.engine.hf_generic import HFGenericRunner
from r1lab.engine.hf_llama import LlamaRunner

PROMPTS = [[3, 4, 5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]]


@pytest.fixture(scope="module")
def llama():
    return tiny_llama()


def sampler_for(model, runner_kind):
    return make_sampler(model, None, backend="auto" if runner_kind == "lean" else "hf")


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
def test_lean_runner_logits_equal_hf_forward(model_type):
    model = tiny_llama(model_type=model_type)
    runner = LlamaRunner(model)
    with torch.inference_mode():
        state, logits = runner.prefill(PROMPTS, 16)
        for i, p in enumerate(PROMPTS):
            torch.testing.assert_close(logits[i], model(torch.tensor([p])).logits[0, -1], atol=1e-5, rtol=1e-5)
        nxt = torch.tensor([20, 21, 22])
        logits = runner.decode(state, nxt)
        logits2 = runner.decode(runner.select(state, torch.tensor([0, 2])), nxt[[0, 2]])
        for i, p in enumerate(PROMPTS):
            ref = model(torch.tensor([p + [20 + i]])).logits[0, -1]
            torch.testing.assert_close(logits[i], ref, atol=1e-5, rtol=1e-5)
        for row, i in enumerate([0, 2]):
            ref = model(torch.tensor([PROMPTS[i] + [20 + i, 20 + i]])).logits[0, -1]
            torch.testing.assert_close(logits2[row], ref, atol=1e-5, rtol=1e-5)


SHARED = [24, 25, 26, 27, 28, 29]  # e.g. a chat template's system prompt
PREFIXED = [SHARED + [3, 4, 5], SHARED + [6], SHARED + [7, 8, 9, 10, 11]]


def test_shared_prefix_runs_once_and_changes_nothing():
    from r1lab.engine.hf_llama import shared_prefix_length

    assert shared_prefix_length(PREFIXED) == len(SHARED)
    assert shared_prefix_length([SHARED, SHARED]) == len(SHARED) - 1  # each prompt keeps a token of its own
    assert shared_prefix_length(PROMPTS) == 0 and shared_prefix_length([SHARED]) == 0
    model = tiny_llama()
    runner = LlamaRunner(model)
    with torch.inference_mode():
        state, logits = runner.prefill(PREFIXED, 24)
        assert state.prefix == len(SHARED) and state.pad.tolist() == [2, 4, 0]
        for i, p in enumerate(PREFIXED):
            torch.testing.assert_close(logits[i], model(torch.tensor([p])).logits[0, -1], atol=1e-5, rtol=1e-5)
        state = runner.repeat(state, 2)  # decode after repeat + select keeps positions and padding right
        state = runner.select(state, torch.tensor([1, 2, 5]))
        logits = runner.decode(state, torch.tensor([20, 21, 22]))
        for row, (i, token) in enumerate([(0, 20), (1, 21), (2, 22)]):
            ref = model(torch.tensor([PREFIXED[i] + [token]])).logits[0, -1]
            torch.testing.assert_close(logits[row], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("runner_kind", ["lean", "generic"])
def test_greedy_equals_stepwise_argmax_of_full_forwards(llama, runner_kind):
    sampler = sampler_for(llama, runner_kind)
    assert isinstance(sampler.runner, LlamaRunner if runner_kind == "lean" else HFGenericRunner)
    out = sampler.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=10))
    for prompt, (completion,) in zip(PROMPTS, out):
        assert completion.token_ids == greedy_by_full_forwards(llama, prompt, 10)
        assert completion.finish_reason == "length" and completion.prompt_token_ids == prompt


@pytest.mark.parametrize("runner_kind", ["lean", "generic"])
@pytest.mark.parametrize("params", [SamplingParams(n=3, temperature=0.7, max_new_tokens=12),
                                    SamplingParams(n=2, temperature=1.3, top_p=0.9, top_k=12, max_new_tokens=12)])
def test_logprobs_equal_teacher_forced_forward(llama, runner_kind, params):
    out = sampler_for(llama, runner_kind).generate(PROMPTS, params)
    for prompt, group in zip(PROMPTS, out):
        assert len(group) == params.n
        for c in group:
            ref = teacher_forced_logprobs(llama, prompt, c.token_ids, params.temperature)
            assert torch.allclose(torch.tensor(c.logprobs), ref, atol=1e-4, rtol=0)
            if params.truncates:
                assert all(p >= m - 1e-6 for p, m in zip(c.policy_logprobs, c.logprobs))
            else:
                assert c.policy_logprobs == c.logprobs


def test_mixed_length_batch_equals_each_prompt_alone(llama):
    sampler = make_sampler(llama, None)
    params = SamplingParams(temperature=0, max_new_tokens=8)
    together = sampler.generate(PROMPTS, params)
    for prompt, (completion,) in zip(PROMPTS, together):
        assert sampler.generate([prompt], params)[0][0].token_ids == completion.token_ids


def test_seeded_sampling_is_deterministic_and_independent_of_batching(llama):
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=8, seed=3)
    a = make_sampler(llama, None).generate(PROMPTS, params)
    b = make_sampler(llama, None, max_batch_rows=4).generate(PROMPTS, params)  # one prompt per chunk
    c = make_sampler(llama, None).generate(PROMPTS, SamplingParams(n=4, temperature=1.0, max_new_tokens=8, seed=4))
    ids = lambda out: [[x.token_ids for x in group] for group in out]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)
    assert len({tuple(x) for x in ids(a)[0]}) > 1  # the n samples of one prompt differ


def test_finished_rows_leave_the_batch(llama):
    sampler = make_sampler(llama, None)
    probe = sampler.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=6))
    stop_id = probe[1][0].token_ids[1]  # row 1 stops after its 2nd token
    batch_sizes = []
    decode = sampler.runner.decode
    sampler.runner.decode = lambda state, tokens: (batch_sizes.append(len(tokens)), decode(state, tokens))[1]
    out = sampler.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=6, stop_token_ids=[stop_id]))
    sampler.runner.decode = decode
    stopped = [i for i, (c,) in enumerate(out) if c.finish_reason == "stop"]
    assert 1 in stopped
    assert batch_sizes[0] == 3 and batch_sizes[-1] == 3 - len(stopped)


@pytest.mark.parametrize("runner_kind", ["lean", "generic"])
def test_weight_updates_are_picked_up_and_training_mode_restored(runner_kind):
    model = tiny_llama()
    sampler = sampler_for(model, runner_kind)
    params = SamplingParams(temperature=0, max_new_tokens=6)
    before = sampler.generate(PROMPTS[:1], params)[0][0].token_ids
    with torch.no_grad():
        model.lm_head.weight.mul_(-1)  # in place, as an optimizer step would
    model.train()
    after = sampler.generate(PROMPTS[:1], params)[0][0].token_ids
    assert model.training
    assert after == greedy_by_full_forwards(model.eval(), PROMPTS[0], 6) and after != before


@pytest.mark.parametrize("runner_kind", ["lean", "generic"])
def test_sync_weights_picks_up_a_fused_optimizer_step(runner_kind):
    """torch's fused AdamW updates parameters without bumping their version counters: a trainer's explicit
    sync_weights() must still re-pack (an RL run would otherwise sample from its initial weights forever)."""
    model = tiny_llama()
    sampler = sampler_for(model, runner_kind)
    params = SamplingParams(temperature=0, max_new_tokens=6)
    before = sampler.generate(PROMPTS[:1], params)[0][0].token_ids
    opt = torch.optim.AdamW(model.parameters(), lr=0.5, fused=True)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    sampler.sync_weights()
    after = sampler.generate(PROMPTS[:1], params)[0][0].token_ids
    assert after == greedy_by_full_forwards(model.eval(), PROMPTS[0], 6) and after != before


def test_generic_runner_packs_linears_only_while_it_decodes():
    """The generic runner swaps each nn.Linear's forward for its packed GEMM during a forward and restores the
    module's own (differentiable) forward afterwards, so training on the same model is unaffected."""
    model = tiny_llama()
    sampler = sampler_for(model, "generic")
    assert len(sampler.runner._packed) == sum(type(m) is torch.nn.Linear for m in model.modules())
    sampler.generate(PROMPTS[:1], SamplingParams(temperature=0, max_new_tokens=3))
    assert all("forward" not in m.__dict__ for m in model.modules())
    model(torch.tensor([PROMPTS[0]])).logits.sum().backward()
    assert model.lm_head.weight.grad is not None


def test_bf16_compute_stays_close_to_the_fp32_forward(llama):
    runner = LlamaRunner(llama, compute_dtype=torch.bfloat16)
    with torch.inference_mode():
        _, logits = runner.prefill(PROMPTS, 8)
        for i, p in enumerate(PROMPTS):
            ref = llama(torch.tensor([p])).logits[0, -1]
            assert logits.dtype == torch.bfloat16
            assert (torch.softmax(logits[i].float(), -1) - torch.softmax(ref, -1)).abs().max() < 0.05
