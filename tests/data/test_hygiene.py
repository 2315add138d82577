"""Hygiene: duplicates, n-gram decontamination (catches an injected eval problem), pass-rate filtering."""

import pytest

from r1lab.data import load_task
from r1lab.data.hygiene import (
    decontaminate,
    dedup_exact,
    dedup_near,
    filter_by_pass_rate,
    jaccard,
    ngrams,
    words,
)
from r1lab.errors import DataError


def recs(*prompts):
    return [{"id": f"r{i}", "prompt": p, "answer": "0", "metadata": {}} for i, p in enumerate(prompts)]


def test_words_keep_numbers_whole_and_split_operators():
    assert words("23+45-17=?") == ["23", "+", "45", "-", "17", "=", "?"]
    assert words("The  Quick\nfox") == ["the", "quick", "fox"]


def test_ngrams_of_short_texts_are_the_whole_text():
    assert ngrams(["a", "b"], 8) == {("a", "b")}
    assert ngrams(list("abcd"), 3) == {("a", "b", "c"), ("b", "c", "d")}
    assert ngrams([], 3) == set()


def test_exact_dedup_uses_canonical_text_and_records_provenance():
    res = dedup_exact(recs("What is 2+2?", "what  is 2+2?", "What is 3+3?"))
    assert [r["id"] for r in res.records] == ["r0", "r2"]
    assert res.counts == {"exact_duplicates": 1}
    assert res.removed == [{"id": "r1", "reason": "exact_duplicate", "of": "r0"}]
    assert res.records[0]["metadata"]["provenance"] == [{"step": "dedup_exact", "key": "prompt"}]


def test_near_dedup_removes_only_pairs_above_the_threshold():
    base = "A train leaves the station at noon travelling at sixty miles per hour towards the coast"
    res = dedup_near(recs(base, base + " today", "Completely different words about a chess puzzle with knights",
                          base.replace("sixty", "seventy")), threshold=0.8, ngram=3)
    assert [x["id"] for x in res.removed] == ["r1"]
    assert res.removed[0]["jaccard"] >= 0.8
    # the sixty/seventy variant shares fewer shingles than the threshold
    a, b = ngrams(words(base), 3), ngrams(words(base.replace("sixty", "seventy")), 3)
    assert jaccard(a, b) < 0.8 and "r3" in [r["id"] for r in res.records]


def test_near_dedup_never_removes_on_the_estimate_alone():
    rows = load_task("arith?operands=4", "train", 500, 0)
    res = dedup_near(rows, threshold=0.9, ngram=3)
    kept = {r["id"]: r for r in rows}
    for rem in res.removed:
        x = ngrams(words(next(r["prompt"] for r in rows if r["id"] == rem["id"])), 3)
        y = ngrams(words(kept[rem["of"]]["prompt"]), 3)
        assert jaccard(x, y) >= 0.9


def test_decontamination_catches_an_injected_eval_problem_short_prompts():
    train = load_task("arith?operands=4", "train", 400, 0)
    evals = load_task("arith?operands=4", "test", 100, 0)
    assert decontaminate(train, evals).counts == {"contaminated": 0}  # disjoint by construction
    injected = train[:200] + [dict(evals[17], id="leak")] + train[200:]
    res = decontaminate(injected, evals, n=8)
    assert [r["id"] for r in res.removed] == ["leak"] and len(res.records) == 400
    assert res.records[0]["metadata"]["provenance"][-1]["step"] == "decontaminate"


def test_decontamination_with_8_grams_on_long_prompts():
    eval_text = "Natalia sold clips to 48 of her friends in April and then she sold half as many in May"
    train = recs("A new question about apples and oranges in a basket of fruit",
                 "Rephrased: Natalia sold clips to 48 of her friends in April, and more later",
                 "sold clips to 48 of her friends in April and then")
    res = decontaminate(train, [eval_text], n=8)
    assert {r["id"] for r in res.removed} == {"r1", "r2"}
    assert decontaminate(train, [eval_text], n=13).counts == {"contaminated": 1}


def test_short_texts_are_checked_both_ways():
    assert decontaminate(recs("1+2=?"), ["please compute 1+2=? now and explain it to me"]).counts["contaminated"] == 1
    assert decontaminate(recs("please compute 1+2=? now and explain it to me"), ["1+2=?"]).counts["contaminated"] == 1
    assert decontaminate(recs("1+2=?"), ["11+2=?"]).counts["contaminated"] == 0
    with pytest.raises(DataError):
        decontaminate(recs("x"), ["x"], n=0)


def test_pass_rate_filter_from_a_callable_or_a_mapping():
    rows = recs("a", "b", "c", "d")
    rates = {"r0": 0.0, "r1": 0.5, "r2": 1.0}
    res = filter_by_pass_rate(rows, rates)
    assert [r["id"] for r in res.records] == ["r1"]
    assert res.counts == {"too_hard": 1, "too_easy": 1, "no_pass_rate": 1}
    assert res.records[0]["metadata"]["provenance"][-1]["pass_rate"] == 0.5
    inclusive = filter_by_pass_rate(rows[:3], lambda r: rates[r["id"]], strict=False)
    assert len(inclusive.records) == 3
    band = filter_by_pass_rate(rows[:3], rates, min_rate=0.2, max_rate=0.6)
    assert [r["id"] for r in band.records] == ["r1"]
    with pytest.raises(DataError):
        filter_by_pass_rate(rows, rates, min_rate=0.9, max_rate=0.1)


def test_steps_compose_and_keep_every_provenance_entry():
    rows = load_task("arith", "train", 50, 0)
    out = dedup_near(dedup_exact(rows + rows[:5]).records, threshold=0.99).records
    out = filter_by_pass_rate(out, lambda r: 0.5).records
    assert len(out) == 50
    assert [p["step"] for p in out[0]["metadata"]["provenance"]] == ["dedup_exact", "dedup_near", "filter_by_pass_rate"]
    assert "provenance" not in rows[0]["metadata"]  # inputs are not modified


def test_shared_instruction_is_boilerplate_not_contamination():
    """Every prompt carries the same instruction: n-grams made mostly of it are no evidence of overlap, while a
    training prompt that shares a real stretch of a held-out problem is still removed."""
    instruction = "Prove the goal from the premises, citing at most two earlier lines in brackets."
    held = [{"prompt": f"{instruction}\nPremises: {i} apples {i + 1} pears {i + 2} plums and {i + 3} figs"}
            for i in range(0, 200, 10)]
    fresh = [{"id": f"t{i}", "prompt": f"{instruction}\nPremises: {i} cats {i + 7} dogs {i + 9} owls"} for i in range(5)]
    leaked = {"id": "leak", "prompt": f"{instruction}\nPremises: 10 apples 11 pears 12 plums and 13 figs"}
    result = decontaminate(fresh + [leaked], held)
    assert [r["id"] for r in result.records] == [f"t{i}" for i in range(5)]
    assert [r["id"] for r in result.removed] == ["leak"]
    # with fewer than BOILERPLATE_MIN_EVAL evaluation problems nothing is treated as boilerplate
    assert len(decontaminate(fresh, held[:3]).records) == 0
