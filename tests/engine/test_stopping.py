"""Stop strings, stop tokens and EOS end each row on its own; text and token ids stay consistent."""

from __future__ import annotations

import pytest
from engine_fixtures import char_tokenizer, single_thread, tiny_llama, tiny_r1lab  # noqa: F401  (autouse)

from r1lab.engine import SamplingParams, make_sampler
from r1lab.errors import ConfigError

PROMPTS = ["the cat sat", "a dog", "on the mat, then"]


@pytest.fixture(scope="module", params=["hf", "r1lab"])
def sampler(request):
    model = tiny_llama() if request.param == "hf" else tiny_r1lab(mtp_depth=0)
    return make_sampler(model, char_tokenizer())


def greedy(sampler, **kw):
    params = SamplingParams(temperature=0, max_new_tokens=24, ignore_eos=True, **kw)
    return [group[0] for group in sampler.generate(PROMPTS, params)]


def test_stop_string_ends_only_the_rows_that_produce_it(sampler):
    free = greedy(sampler)
    stop = free[0].text[5:7]  # a string row 0 is known to produce, ending at its 7th token at the latest
    first_end = free[0].text.index(stop) + len(stop)
    for include in (True, False):
        out = greedy(sampler, stop=[stop], include_stop_str=include)
        for before, after in zip(free, out):
            if stop in before.text:
                end = before.text.index(stop) + len(stop)
                assert after.finish_reason == "stop"
                assert after.token_ids == before.token_ids[:end]  # one character per token
                assert after.text == (before.text[:end] if include else before.text[: end - len(stop)])
            else:
                assert after.token_ids == before.token_ids and after.finish_reason == "length"
    assert first_end <= 7


def test_stop_token_ends_row_and_is_kept_in_ids_but_not_text(sampler):
    free = greedy(sampler)
    stop_id = free[1].token_ids[3]
    out = greedy(sampler, stop_token_ids=[stop_id])
    for before, after in zip(free, out):
        if stop_id in before.token_ids:
            end = before.token_ids.index(stop_id) + 1
            assert after.token_ids == before.token_ids[:end] and after.finish_reason == "stop"
            assert after.text == before.text[: end - 1] and len(after.logprobs) == end
        else:
            assert after.token_ids == before.token_ids and after.finish_reason == "length"


def test_eos_from_model_config_ends_rows_unless_ignored():
    model = tiny_llama()
    sampler = make_sampler(model, None)
    prompts = [[3, 4, 5], [6, 7]]
    free = sampler.generate(prompts, SamplingParams(temperature=0, max_new_tokens=10))
    eos = free[0][0].token_ids[2]
    model.generation_config.eos_token_id = [eos]
    stopped = make_sampler(model, None).generate(prompts, SamplingParams(temperature=0, max_new_tokens=10))
    assert stopped[0][0].token_ids == free[0][0].token_ids[: free[0][0].token_ids.index(eos) + 1]
    assert stopped[0][0].finish_reason == "stop"
    ignored = make_sampler(model, None).generate(prompts, SamplingParams(temperature=0, max_new_tokens=10,
                                                                         ignore_eos=True))
    assert [g[0].token_ids for g in ignored] == [g[0].token_ids for g in free]


def test_stop_strings_need_a_tokenizer():
    with pytest.raises(ConfigError, match="stop strings need a tokenizer"):
        make_sampler(tiny_llama(), None).generate([[3, 4]], SamplingParams(stop=["x"]))
