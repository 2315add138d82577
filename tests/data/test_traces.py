"""Worked traces in three styles: fixed proportions, verified chains of thought, controllable errors."""

import re
from collections import Counter

import pytest

from r1lab.data import (
    build_corpus,
    cold_start_records,
    get_task,
    get_template,
    load_task,
    verify_answer,
)
from r1lab.data.tasks.synthetic import Step
from r1lab.data.thinking_metrics import classify_reflections
from r1lab.data.traces import REFLECT_PHRASE, final_answer, style_counts, write_trace
from r1lab.errors import DataError

TASKS = ["arith?operands=4", "column_add?digits=3"]


def completion_of(doc):
    """The completion part of a corpus document (after the plain template's prompt line)."""
    return doc["text"].split("\n", 1)[1].removesuffix("<|eos|>")


@pytest.mark.parametrize("size,mix,expected", [
    (100, {"direct": 0.4, "cot": 0.3, "reflect": 0.3}, {"direct": 40, "cot": 30, "reflect": 30}),
    (10, {"direct": 1, "cot": 1, "reflect": 1}, {"direct": 4, "cot": 3, "reflect": 3}),
    (7, {"cot": 1.0}, {"cot": 7}),
])
def test_style_counts_are_exact(size, mix, expected):
    assert style_counts({k: v / sum(mix.values()) for k, v in mix.items()}, size) == expected


@pytest.mark.parametrize("task", TASKS)
def test_corpus_has_the_requested_proportions_and_is_deterministic(task):
    docs = build_corpus(task, 200, 0, {"direct": 0.5, "cot": 0.25, "reflect": 0.25})
    assert Counter(d["style"] for d in docs) == {"direct": 100, "cot": 50, "reflect": 50}
    assert docs == build_corpus(task, 200, 0, {"direct": 0.5, "cot": 0.25, "reflect": 0.25})
    assert all(d["text"].endswith("</answer><|eos|>") for d in docs)
    assert all(d["text"].startswith(d["prompt"] + "\n<think>\n") for d in docs)


@pytest.mark.parametrize("task", TASKS)
def test_every_worked_trace_is_verified_correct(task):
    docs = build_corpus(task, 300, 1)
    for d in docs:
        if d["style"] != "direct":
            assert d["correct"]
            assert verify_answer(d["task"], final_answer(completion_of(d)), d["answer"])


def test_worked_traces_pass_the_rl_rewards():
    rewards = pytest.importorskip("r1lab.rewards")
    if not hasattr(rewards, "get_reward"):
        pytest.skip("r1lab.rewards has not landed its public API yet")
    docs = build_corpus("arith?operands=4", 120, 2)
    comps = [completion_of(d).removeprefix("<think>\n") for d in docs]
    prefill = ["<think>\n"] * len(docs)
    fmt = rewards.get_reward("format")(comps, prefill=prefill)
    acc = rewards.get_reward("accuracy")(comps, answer=[d["answer"] for d in docs],
                                         task=[d["task"] for d in docs], prefill=prefill)
    assert fmt == [1.0] * len(docs)
    assert acc == [1.0 if d["correct"] else 0.0 for d in docs]


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
def test_direct_answers_are_wrong_at_the_requested_rate_on_hard_problems(rate):
    docs = build_corpus("arith?operands=4", 600, 0, {"direct": 1.0}, direct_error_rate=rate)
    task = get_task("arith?operands=4")
    wrong = [not verify_answer(d["task"], final_answer(completion_of(d)), d["answer"]) for d in docs]
    assert wrong == [not d["correct"] for d in docs]
    share = sum(wrong) / len(docs)
    assert all(task.is_hard({"metadata": d["metadata"], "answer": d["answer"]}) for d in docs)
    assert abs(share - rate) < 0.07


def test_easy_problems_get_correct_direct_answers():
    task = get_task("column_add?digits=1")
    rec = next(r for r in load_task(task.name, "train", 40, 0) if int(r["answer"]) < 10)
    import random

    out = write_trace(task, rec, "direct", random.Random(0), direct_error_rate=1.0)
    assert out["correct"] and final_answer(out["completion"]) == rec["answer"]


def test_reflect_traces_notice_and_correct_a_slip():
    docs = build_corpus("arith?operands=4", 400, 0, {"reflect": 1.0}, slip_rate=0.5)
    slipped = [d for d in docs if d["slipped"]]
    assert 0.4 < len(slipped) / len(docs) < 0.6
    for d in docs:
        comp = completion_of(d)
        assert comp.count(REFLECT_PHRASE) == (1 if d["slipped"] else 0)
        assert re.search(r"\ncheck: \d+[+-]\d+=\d+ ok\n</think>", comp)
    for d in slipped:
        lines = completion_of(d).split("\n")
        i = next(k for k, line in enumerate(lines) if line.startswith(REFLECT_PHRASE))
        wrong, right = lines[i - 1], lines[i].removeprefix(REFLECT_PHRASE + " ")
        assert wrong.split("=")[0] == right.split("=")[0]  # the same step, recomputed
        assert eval(right.split("=")[0]) == int(right.split("=")[1]) != int(wrong.split("=")[1])


def test_styles_differ_in_length_and_reflection_words_but_stay_short():
    docs = build_corpus("arith?operands=4", 300, 0)
    by_style = {s: [len(completion_of(d)) for d in docs if d["style"] == s] for s in ("direct", "cot", "reflect")}
    mean = {s: sum(v) / len(v) for s, v in by_style.items()}
    assert mean["direct"] < mean["cot"] < mean["reflect"] < 150  # characters; digits are one token each
    assert all("wait" not in completion_of(d) and "check" not in completion_of(d)
               for d in docs if d["style"] != "reflect")


def test_cold_start_records_are_all_correct_prompt_completion_pairs():
    recs = cold_start_records("column_add?digits=3", 60, 0)
    tpl = get_template("plain")
    assert Counter(r["style"] for r in recs) == {"cot": 30, "reflect": 30}
    for r in recs:
        assert r["prompt"] == tpl.render(r["metadata"]["problem"])
        assert verify_answer(r["task"], final_answer(tpl.prefill + r["completion"]), r["answer"])
    with_direct = cold_start_records("arith", 40, 0, {"direct": 1, "cot": 1})
    assert all(verify_answer(r["task"], final_answer(r["completion"]), r["answer"]) for r in with_direct)


def test_traces_need_a_synthetic_task_and_known_styles():
    with pytest.raises(DataError, match="no programmatic worked solutions"):
        build_corpus("rg:chain_sum", 5, 0)
    with pytest.raises(DataError, match="unknown style"):
        build_corpus("arith", 5, 0, {"rambling": 1.0})
    with pytest.raises(DataError, match="weights"):
        build_corpus("arith", 5, 0, {"cot": -1.0})


def test_traces_refuse_records_of_mixed_tasks():
    from r1lab.data import corpus_from_records

    mixed = load_task("arith", "train", 2, 0) + load_task("column_add", "train", 2, 0)
    with pytest.raises(DataError, match="one task at a time"):
        corpus_from_records(mixed)


@pytest.mark.parametrize("task_spec", TASKS)
def test_unchecked_slips_run_on_to_a_wrong_answer_and_checked_ones_are_corrected(task_spec):
    """With equal slip rates the two worked styles make the same first-pass mistakes on hard steps; only
    `reflect` checks, so `cot` is wrong exactly where it slipped and `reflect` is always right."""
    task = get_task(task_spec)
    docs = build_corpus(task_spec, 400, 3, {"cot": 0.5, "reflect": 0.5}, slip_rate=0.6, cot_slip_rate=0.6,
                        slip_steps="hard")
    for d in docs:
        rec = {"metadata": d["metadata"], "answer": d["answer"], "prompt": d["prompt"]}
        right = [s.line() for s in task.steps(rec)]
        got = verify_answer(d["task"], final_answer(completion_of(d)), d["answer"])
        assert got == d["correct"] == (not (d["style"] == "cot" and d["slipped"]))
        if not task.hard_steps(rec):
            assert not d["slipped"]
        if d["slipped"] and d["style"] == "cot":
            lines = completion_of(d).split("</think>")[0].removeprefix("<think>\n").strip().split("\n")
            k = next(i for i, (a, b) in enumerate(zip(lines, right)) if a != b)
            assert k in task.hard_steps(rec)  # the first wrong line is a carry/borrow step
            assert REFLECT_PHRASE not in completion_of(d) and "check" not in completion_of(d)
        if d["slipped"] and d["style"] == "reflect":
            wrong = completion_of(d).split("\n" + REFLECT_PHRASE)[0].rsplit("\n", 1)[1]
            assert right.index(next(r for r in right if r.split("=")[0] == wrong.split("=")[0])) in \
                task.hard_steps(rec)
    slipped = [d for d in docs if d["slipped"] and task.hard_steps(
        {"metadata": d["metadata"], "answer": d["answer"], "prompt": d["prompt"]})]
    for style in ("cot", "reflect"):
        hard = [d for d in docs if d["style"] == style and task.hard_steps(
            {"metadata": d["metadata"], "answer": d["answer"], "prompt": d["prompt"]})]
        share = sum(d["slipped"] for d in hard) / len(hard)
        assert abs(share - 0.6) < 0.12, (style, share)
    assert slipped


def test_an_unchecked_column_slip_moves_the_answer_by_the_slip_times_its_place():
    import random

    task = get_task("column_add?digits=4")
    for rec in load_task(task.name, "train", 60, 1):
        gold = int(rec["answer"])
        for k in range(len(task.steps(rec))):
            lines, answer = task.slipped_solution(rec, k, random.Random(k))
            delta = int(lines[k].split("=")[1].split()[0]) - task.steps(rec)[k].value
            assert delta != 0 and int(answer) == gold + delta * 10**k


def test_cold_start_traces_never_keep_an_unchecked_slip():
    recs = cold_start_records("column_add?digits=3", 80, 0, slip_steps="hard")
    assert all(verify_answer(r["task"], final_answer(r["completion"]), r["answer"]) for r in recs)


def test_slip_steps_must_be_known():
    with pytest.raises(DataError, match="slip_steps"):
        build_corpus("arith", 5, 0, {"cot": 1.0}, slip_steps="everywhere")


@pytest.mark.parametrize("task_spec", TASKS)
def test_a_check_habit_rechecks_every_hard_step_and_fixes_exactly_the_slipped_one(task_spec):
    """`check_steps="hard"`: every carry/borrow step is followed by a recheck that restates it right, slipped or
    not, so the habit needs no foresight of the slip; the reflection metrics call the fixing check effective
    and the others empty. The default (`slipped`) leaves the corpus as it was."""
    from r1lab.data.thinking_metrics import classify_reflections

    task = get_task(task_spec)
    docs = build_corpus(task_spec, 200, 5, {"reflect": 1.0}, slip_rate=0.5, slip_steps="hard", check_steps="hard")
    assert any(d["slipped"] for d in docs) and any(not d["slipped"] for d in docs)
    for d in docs:
        rec = {"task": d["task"], "metadata": d["metadata"], "answer": d["answer"], "prompt": d["prompt"]}
        text = completion_of(d)
        assert d["correct"] and text.count(REFLECT_PHRASE) == len(task.hard_steps(rec))
        kinds = classify_reflections(text, rec, correct=True)
        assert (kinds.effective, kinds.empty) == (int(d["slipped"]), len(task.hard_steps(rec)) - int(d["slipped"]))
        assert kinds.harmful == kinds.failed == 0
    default = build_corpus(task_spec, 50, 5, {"reflect": 1.0}, slip_rate=0.5, slip_steps="hard")
    assert default == build_corpus(task_spec, 50, 5, {"reflect": 1.0}, slip_rate=0.5, slip_steps="hard",
                                   check_steps="slipped")
    assert any(REFLECT_PHRASE not in completion_of(d) for d in default)


def test_check_steps_must_be_known():
    with pytest.raises(DataError, match="check_steps"):
        build_corpus("arith", 5, 0, {"reflect": 1.0}, check_steps="always")


@pytest.mark.parametrize("task_spec", TASKS)
def test_without_the_final_check_a_reflect_trace_is_the_same_trace_less_its_check_line(task_spec):
    """`final_check=False` drops exactly the closing check line and nothing else: same problems, same slips and
    rechecks, same answers, every trace still verified; the cold-start traces follow the same option."""
    task = get_task(task_spec)
    mix = {"cot": 0.5, "reflect": 0.5}
    with_check = build_corpus(task_spec, 60, 3, mix, slip_rate=0.5)
    without = build_corpus(task_spec, 60, 3, mix, slip_rate=0.5, final_check=False)
    for a, b in zip(with_check, without):
        rec = {"task": a["task"], "metadata": a["metadata"], "answer": a["answer"], "prompt": a["prompt"]}
        assert (a["id"], a["style"], a["slipped"], a["correct"]) == (b["id"], b["style"], b["slipped"], b["correct"])
        lines_a, lines_b = completion_of(a).splitlines(), completion_of(b).splitlines()
        if a["style"] == "reflect":
            assert task.check_line(rec) in lines_a and task.check_line(rec) not in lines_b
            lines_a.remove(task.check_line(rec))
        assert lines_a == lines_b
    cold = cold_start_records(task_spec, 40, 1, {"reflect": 1.0}, final_check=False)
    assert all(not re.search(r"^check:", r["completion"], re.M) for r in cold)
    assert all(verify_answer(r["task"], final_answer(r["completion"]), r["answer"]) for r in cold)


def test_a_decomposed_recheck_adds_two_terms_at_a_time_and_ends_with_the_step_it_restates():
    step = Step("7+8+9+1", 25, column=True)
    assert step.decomposed_line() == "7+8=15, 15+9=24, 24+1=25, so 7+8+9+1=25 carry 2"
    assert Step("7+8", 15, column=True).decomposed_line() == "7+8=15 carry 1"   # two terms: nothing to split
    assert Step("23-17", 6).decomposed_line() == "23-17=6"                       # not a sum: restated


@pytest.mark.parametrize("task_spec", ["column_add?digits=2", "column_add?digits=2&operands=3"])
def test_decomposed_checks_change_only_the_recheck_lines_and_are_judged_by_the_step_they_restate(task_spec):
    """`check_form="decompose"`: the same problems, slips and answers as restated checks; each recheck line is the
    step recomputed on the page, and the self-correction judge reads it as that step (right after a slip)."""
    task = get_task(task_spec)
    kw = dict(slip_rate=0.5, slip_steps="hard", check_steps="hard", final_check=False)
    restated = build_corpus(task_spec, 60, 3, {"cot": 0.5, "reflect": 0.5}, **kw)
    decomposed = build_corpus(task_spec, 60, 3, {"cot": 0.5, "reflect": 0.5}, check_form="decompose", **kw)
    split_any = False
    for a, b in zip(restated, decomposed):
        rec = {"task": a["task"], "metadata": a["metadata"], "answer": a["answer"], "prompt": a["prompt"]}
        assert (a["id"], a["style"], a["slipped"], a["correct"]) == (b["id"], b["style"], b["slipped"], b["correct"])
        for la, lb in zip(completion_of(a).splitlines(), completion_of(b).splitlines(), strict=True):
            if not la.startswith(REFLECT_PHRASE):
                assert la == lb
                continue
            step = next(s for s in task.steps(rec) if la == f"{REFLECT_PHRASE} {s.line()}")
            assert lb == f"{REFLECT_PHRASE} {step.decomposed_line()}" and task.judge_line(rec, lb) is True
            split_any = split_any or "," in lb
    assert split_any                                          # some rechecks really were recomputed in parts
    effective = sum(classify_reflections(completion_of(r), r, r["correct"]).effective for r in decomposed)
    assert effective == sum(r["slipped"] for r in decomposed if r["style"] == "reflect")


def test_check_form_must_be_known():
    with pytest.raises(DataError, match="check_form"):
        build_corpus("column_add?digits=2", 4, 0, {"reflect": 1.0}, check_form="twice")
