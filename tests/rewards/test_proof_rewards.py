"""`proof` (outcome), `proof_steps` (verified share before the first failure) and `proof_verified_lines`, with
the TRL signature, None where they cannot judge, and the killable verifier bounding a check that runs long."""

from __future__ import annotations

import time

import pytest

from r1lab.rewards import get_reward, reset_timeout_counts, timeout_counts

pytest.importorskip("z3")

META = {"premises": ["a == 4", "b == a + 3", "c >= 2 * b"], "goal": "c >= 14"}


def answer(proof: str) -> str:
    return f"<think>\nworking\n</think>\n<answer>\n{proof}\n</answer>"


GOOD = answer("4. b == 7 [1, 2]\n5. c >= 14 [4, 3]")
HALF = answer("4. b == 7 [1, 2]\n5. c >= 15 [4, 3]")
WRONG_FIRST = answer("4. b == 8 [1, 2]\n5. c >= 14 [4, 3]")
COMPLETIONS = [GOOD, HALF, WRONG_FIRST, "no answer block", answer("just words")]


def scores(name: str, completions=COMPLETIONS, meta=META, **params):
    return get_reward(name, **params)(completions, metadata=[meta] * len(completions))


def test_outcome_process_and_count_rewards():
    assert scores("proof") == [1.0, 0.0, 0.0, None, None]
    assert scores("proof_steps") == [1.0, 0.5, 0.0, None, None]
    assert scores("proof_verified_lines") == [2.0, 1.0, 0.0, None, None]


def test_rows_that_are_not_proof_problems_cannot_be_judged():
    assert scores("proof", [GOOD], meta=None) == [None]
    assert scores("proof", [GOOD], meta={"goal": "c >= 14"}) == [None]
    assert scores("proof", [GOOD], meta={"premises": ["a =="], "goal": "c >= 14"}) == [None]  # a broken problem


def test_prefill_is_put_back_like_every_reward():
    completion = GOOD.removeprefix("<think>\n")
    assert get_reward("proof")([completion], metadata=[META], prefill=["<think>\n"]) == [1.0]


def test_a_check_that_overruns_is_killed_scored_zero_and_counted():
    hard = {"premises": ["x > 1", "y > 1"], "goal": "x * x * x + y * y * y != z * z * z + 33 * w * w * w"}
    proof = answer("3. x * x * x + y * y * y != z * z * z + 33 * w * w * w [1, 2]")
    get_reward("proof")([GOOD], metadata=[META])  # the worker is up before timing
    reset_timeout_counts()
    start = time.monotonic()
    assert get_reward("proof", timeout_s=0.05)([proof], metadata=[hard]) == [0.0]
    assert time.monotonic() - start < 2.5  # 0.05 s + the kill grace, not Z3's own limits
    assert timeout_counts().get("proof") == 1
    assert get_reward("proof")([GOOD], metadata=[META]) == [1.0]  # a fresh worker answers the next request
