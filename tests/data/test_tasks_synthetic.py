"""Synthetic tasks: deterministic, split-disjoint by construction, verified by integer equality."""

import pytest

from r1lab.data import get_task, load_task, parse_task_spec, split_of, verify_answer
from r1lab.data.tasks.synthetic import parse_int
from r1lab.errors import DataError


@pytest.mark.parametrize("name", ["arith", "arith?operands=4&digits=2", "column_add?digits=3"])
def test_same_arguments_give_same_records(name):
    assert load_task(name, "train", 50, 7) == load_task(name, "train", 50, 7)
    assert load_task(name, "train", 50, 7) != load_task(name, "train", 50, 8)


def test_a_smaller_request_is_a_prefix_of_a_larger_one():
    assert load_task("arith", "train", 20, 3) == load_task("arith", "train", 60, 3)[:20]


def test_records_have_the_contract_fields_and_unique_ids():
    recs = load_task("arith", "train", 200, 0)
    assert all(set(r) == {"id", "prompt", "answer", "task", "metadata"} for r in recs)
    assert len({r["id"] for r in recs}) == len(recs)
    assert len({r["prompt"] for r in recs}) == len(recs)


@pytest.mark.parametrize("name", ["arith?digits=1&operands=2", "column_add?digits=2"])
def test_splits_never_share_a_problem_whatever_the_seed(name):
    train = {r["prompt"] for s in (0, 1) for r in load_task(name, "train", 80, s)}
    test = {r["prompt"] for s in (0, 1) for r in load_task(name, "test", 8, s)}
    val = {r["prompt"] for r in load_task(name, "validation", 8, 0)}
    assert not train & test and not train & val and not test & val
    assert all(split_of(p) == "test" for p in test)


def test_eval_is_an_alias_of_test():
    assert load_task("arith", "eval", 10, 0) == load_task("arith", "test", 10, 0)


def test_answers_are_the_arithmetic_of_the_prompt():
    for r in load_task("arith?operands=4&digits=3", "train", 100, 0):
        expr = r["prompt"].removesuffix("=?")
        assert int(r["answer"]) == eval(expr)  # the prompt is plain integer + and -
        assert int(r["answer"]) >= 0
        assert all(100 <= x <= 999 for x in r["metadata"]["operands"])
    for r in load_task("column_add?digits=3&operands=3", "train", 50, 0):
        assert int(r["answer"]) == sum(r["metadata"]["operands"])


def test_difficulty_knobs_change_the_problems():
    short = load_task("arith?operands=2&digits=1", "train", 20, 0)
    long = load_task("arith?operands=5&digits=3", "train", 20, 0)
    assert all(len(r["metadata"]["operands"]) == 2 for r in short)
    assert all(len(r["metadata"]["operands"]) == 5 for r in long)
    assert sum(len(r["prompt"]) for r in long) > 2 * sum(len(r["prompt"]) for r in short)
    mixed = load_task("arith?operands=2-4", "train", 100, 0)
    assert {len(r["metadata"]["operands"]) for r in mixed} == {2, 3, 4}


@pytest.mark.parametrize("text,value", [("59", 59), (" 59 ", 59), ("59.", 59), ("1,234", 1234), ("+7", 7),
                                        ("-3", -3), ("59.0", 59), ("59.5", None), ("fifty", None), ("", None)])
def test_integer_answers_are_read_plainly(text, value):
    assert parse_int(text) == value


def test_verify_accepts_the_gold_answer_and_rejects_others():
    r = load_task("arith", "test", 1, 0)[0]
    gold = int(r["answer"])
    assert verify_answer(r["task"], str(gold), r["answer"])
    assert verify_answer(r["task"], f" {gold}. ", r)  # a whole record works as gold too
    assert not verify_answer(r["task"], str(gold + 1), r["answer"])
    assert not verify_answer(r["task"], None, r["answer"])
    assert not verify_answer(r["task"], "x" * 10_000, r["answer"])


def test_task_names_round_trip_through_their_canonical_form():
    t = get_task("arith?digits=3&operands=4")
    assert t.name == "arith?digits=3&operands=4"
    assert get_task({"name": "arith", "operands": 4, "digits": 3}).name == t.name
    assert parse_task_spec(t.name) == ("arith", None, {"digits": 3, "operands": 4})


@pytest.mark.parametrize("bad", ["arith?operands=1", "arith?digits=0", "arith?ops=*", "arith?colour=red",
                                 "nosuchtask", "arith:target"])
def test_bad_task_options_are_one_line_data_errors(bad):
    with pytest.raises(DataError) as e:
        load_task(bad, "train", 1, 0)
    assert "\n" not in str(e.value)


def test_an_exhausted_problem_space_is_an_error_not_a_short_list():
    with pytest.raises(DataError, match="too small"):
        load_task("arith?operands=2&digits=1&ops=+", "test", 50, 0)  # at most 81 problems, ~10% in test


@pytest.mark.parametrize("value", [3, -2, 0.5, 1e-05, 2.5e20, True, False, None, "text", "2-4", "+-", "true", "7",
                                   [1, 2], {"a": [1, {"b": "c&d=e"}]}, "a&b=c?d"])
def test_option_values_survive_the_canonical_name(value):
    from r1lab.data.tasks.base import format_task_name

    name = format_task_name("kind", "target", {"opt": value})
    assert parse_task_spec(name) == ("kind", "target", {"opt": value})
