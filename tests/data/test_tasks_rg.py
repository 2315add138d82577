"""reasoning-gym tasks: any dataset by name with its config, scored by reasoning-gym's own score_answer."""

import json

import pytest

from r1lab.data import get_task, load_task, score_answer, split_of, verify_answer
from r1lab.errors import DataError


def test_config_options_reach_the_dataset():
    recs = load_task("rg:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1", "train", 20, 0)
    assert all(r["metadata"]["source"]["num_terms"] == 2 for r in recs)
    as_dict = load_task({"name": "rg:basic_arithmetic", "min_terms": 2, "max_terms": 2,
                         "min_digits": 1, "max_digits": 1}, "train", 20, 0)
    assert as_dict == recs


def test_records_are_deterministic_and_splits_disjoint():
    name = "rg:chain_sum"
    assert load_task(name, "train", 30, 1) == load_task(name, "train", 30, 1)
    train = {r["prompt"] for r in load_task(name, "train", 200, 0)}
    test = [r["prompt"] for r in load_task(name, "test", 20, 0)]
    assert not train & set(test)
    assert all(split_of(p) == "test" for p in test)


@pytest.mark.parametrize("dataset", ["basic_arithmetic", "chain_sum", "countdown", "leg_counting", "gsm_symbolic"])
def test_gold_scores_one_and_a_wrong_answer_scores_less(dataset):
    r = load_task(f"rg:{dataset}", "test", 1, 0)[0]
    assert verify_answer(r["task"], r["answer"], r)
    assert score_answer(r["task"], r["answer"], r) == 1.0
    assert not verify_answer(r["task"], "definitely not it", r)


def test_scoring_is_reasoning_gyms_own(monkeypatch):
    import reasoning_gym.arithmetic.basic_arithmetic as mod

    calls = []
    original = mod.BasicArithmeticDataset.score_answer

    def spy(self, answer, entry):
        calls.append((answer, entry["answer"]))
        return original(self, answer, entry)

    monkeypatch.setattr(mod.BasicArithmeticDataset, "score_answer", spy)
    r = load_task("rg:basic_arithmetic", "test", 1, 0)[0]
    assert verify_answer(r["task"], r["answer"], r)
    assert not verify_answer(r["task"], str(int(r["answer"]) + 1), r)
    assert calls == [(r["answer"], r["answer"]), (str(int(r["answer"]) + 1), r["answer"])]


def test_a_record_read_back_from_json_still_verifies():
    for r in load_task("rg:countdown", "train", 3, 0):
        back = json.loads(json.dumps(r))
        assert back == r
        assert verify_answer(back["task"], back["answer"], back)


def test_a_bare_gold_string_works_for_datasets_scored_by_answer_alone():
    r = load_task("rg:chain_sum", "test", 1, 0)[0]
    assert verify_answer(r["task"], r["answer"], r["answer"])
    assert not verify_answer(r["task"], r["answer"] + "1", r["answer"])


def test_composite_datasets_take_their_specs_as_dicts():
    spec = {"name": "rg:composite", "datasets": [{"name": "chain_sum", "weight": 1},
                                                 {"name": "leg_counting", "weight": 1}]}
    recs = load_task(spec, "train", 10, 0)
    assert {r["metadata"]["source"]["source_dataset"] for r in recs} == {"chain_sum", "leg_counting"}
    assert all(verify_answer(r["task"], r["answer"], r) for r in recs)


@pytest.mark.parametrize("bad", ["rg", "rg:no_such_dataset", "rg:basic_arithmetic?seed=3",
                                 "rg:basic_arithmetic?min_terms=0"])
def test_bad_names_and_configs_are_data_errors(bad):
    with pytest.raises(DataError):
        load_task(bad, "train", 2, 0)


def test_every_registered_dataset_is_reachable_by_name():
    from reasoning_gym.factory import DATASETS

    names = sorted(DATASETS)
    assert len(names) > 50
    for name in names:
        if name != "composite":
            assert get_task(f"rg:{name}").target == name
