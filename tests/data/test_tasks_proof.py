"""The `proof` task: chains whose every premise is needed, worked proofs of exactly `depth` lines that the checker
verifies, slips that it catches, disjoint splits, and traces for the corpus and cold start."""

from __future__ import annotations

import random

import pytest

from r1lab.data import load_task
from r1lab.data.tasks import get_task
from r1lab.data.traces import build_corpus, cold_start_records, final_answer, write_trace
from r1lab.errors import DataError
from r1lab.logic import check_proof

pytest.importorskip("z3")


@pytest.mark.parametrize("domain", ["lia", "parity", "prop"])
def test_worked_proofs_have_depth_lines_and_verify(domain):
    task = get_task(f"proof?domain={domain}&depth=1-5")
    for record in load_task(task.name, "train", 20, seed=3):
        meta = record["metadata"]
        proof = task.answer_text(record)
        assert len(proof.splitlines()) == meta["depth"] and meta["domain"] == domain
        assert check_proof(meta["premises"], meta["goal"], proof).complete
        assert task.score(proof, record) == 1.0 and task.verify(proof, record)
        assert f"Goal: {meta['goal']}" in record["prompt"] and record["answer"] == meta["goal"]


def test_every_chain_premise_is_needed_so_no_shorter_proof_exists():
    """Dropping any premise the worked proof cites leaves the goal unprovable even with every other premise cited
    at once: the goal needs all depth + 1 of them, and K = 2 citations a line join at most one more per line."""
    from r1lab.logic import CheckLimits

    task = get_task("proof?depth=1-4&distractors=2")
    for record in load_task(task.name, "test", 40, seed=0):
        meta = record["metadata"]
        cited = sorted({c for step in meta["proof"] for c in step[3] if c <= len(meta["premises"])})
        assert len(cited) == meta["depth"] + 1
        everything = CheckLimits(max_citations=len(meta["premises"]))
        all_lines = ", ".join(str(i) for i in range(1, len(meta["premises"]) + 1))
        first = len(meta["premises"]) + 1
        assert check_proof(meta["premises"], meta["goal"], f"{first}. {meta['goal']} [{all_lines}]", everything).complete
        for dropped in cited:
            rest = ", ".join(str(i) for i in range(1, len(meta["premises"]) + 1) if i != dropped)
            attempt = check_proof(meta["premises"], meta["goal"], f"{first}. {meta['goal']} [{rest}]", everything)
            assert not attempt.complete, (record["prompt"], dropped)


def test_slips_are_caught_by_the_checker_and_traces_verify():
    task = get_task("proof?depth=2-4")
    rng = random.Random(0)
    for record in load_task(task.name, "train", 12, seed=1):
        meta = record["metadata"]
        assert task.score(task.wrong_answer(record, rng), record) == 0.0
        for step in task.steps(record):
            slipped = task.slipped_line(step, rng)
            assert slipped != step.line()
        reflect = write_trace(task, record, "reflect", rng, slip_rate=1.0)
        assert "wait, let me check:" in reflect["completion"] and reflect["correct"]
        assert check_proof(meta["premises"], meta["goal"], final_answer(reflect["completion"])).complete


def test_splits_are_disjoint_and_options_are_checked():
    train = {r["prompt"] for r in load_task("proof", "train", 200, seed=0)}
    test = {r["prompt"] for r in load_task("proof", "test", 100, seed=0)}
    assert not train & test
    assert load_task("proof", "test", 5, seed=0) == load_task("proof", "test", 5, seed=0)
    for bad in ["proof?domain=geometry", "proof?depth=0", "proof?distractors=9", "proof?colour=red", "proof:x"]:
        with pytest.raises(DataError):
            get_task(bad)


def test_corpus_and_cold_start_include_worked_proofs():
    corpus = build_corpus("proof?depth=2-3", 30, seed=0)
    assert {d["style"] for d in corpus} == {"direct", "cot", "reflect"}
    assert any(d["slipped"] for d in corpus) and any(not d["correct"] for d in corpus)
    cold = cold_start_records("proof?depth=2-3", 10, seed=0)
    task = get_task("proof?depth=2-3")
    assert all(task.score(final_answer("<think>\n" + c["completion"]), c) == 1.0 for c in cold)


def test_gentle_options_for_tiny_models():
    """`instruction=false` drops the instruction line; `names=ordered` runs the chain a, b, c, ... (A, B, C for
    propositions) while the premises stay shuffled; the worked proofs still verify."""
    task = get_task("proof?depth=3&distractors=0&names=ordered&instruction=false&domain=lia")
    for record in load_task(task.name, "test", 10, seed=0):
        assert record["prompt"].startswith("Premises:\n")
        names = [step[1].split()[0] for step in record["metadata"]["proof"]]
        assert names == ["b", "c", "d"]
        assert task.score(task.answer_text(record), record) == 1.0
    with pytest.raises(DataError, match="names"):
        get_task("proof?names=greek")
