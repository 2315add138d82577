"""The proof checker: a line is verified when the lines it cites (at most K) entail it, checked by Z3; the proof
is complete when every line is and the last is the goal. Hostile input is rejected or bounded, never evaluated."""

from __future__ import annotations

import re
import time

import pytest

from r1lab.logic import CheckLimits, FormulaError, check_proof, parse_formula

pytest.importorskip("z3")

PARITY = (["n % 2 == 1", "m % 2 == 1", "k == n * m"], "k % 2 == 1")
CHAIN = (["a == 4", "b == a + 3", "c >= 2 * b", "d >= c - 5"], "d >= 9")
CHAIN_PROOF = "5. b == 7 [1, 2]\n6. c >= 14 [5, 3]\n7. d >= 9 [6, 4]"


def statuses(result):
    return [line.status for line in result.lines]


def test_valid_proofs_in_each_domain():
    assert check_proof(*CHAIN, CHAIN_PROOF).complete
    assert check_proof(*PARITY, "4. (n * m) % 2 == 1 [1, 2]\n5. k % 2 == 1 [4, 3]").complete  # n, m odd => nm odd
    div = (["a % 3 == 0", "b % 3 == 0"], "(a + b) % 3 == 0")
    assert check_proof(*div, "3. (a + b) % 3 == 0 [1, 2]").complete  # 3 | a, 3 | b => 3 | a + b
    prop = (["P", "P -> Q", "not R -> not Q", "not R or S"], "S")
    assert check_proof(*prop, "5. Q [1, 2]\n6. R [5, 3]\n7. S [6, 4]").complete
    # the citation form `[by i, j]` and blank lines read the same
    assert check_proof(*CHAIN, "5. b == 7 [by 1, 2]\n\n6. c >= 14 [by 5, 3]\n7. d >= 9 [by 6, 4]").complete


def test_one_wrong_line_breaks_the_proof_and_the_step_share_counts_the_lines_before_it():
    result = check_proof(*CHAIN, "5. b == 7 [1, 2]\n6. c >= 15 [5, 3]\n7. d >= 9 [6, 4]")
    # line 7 does follow from what it cites, but it rests on the unproven line 6: the proof is still broken
    assert not result.complete and statuses(result) == ["verified", "wrong", "verified"]
    assert result.verified_prefix == 1 and result.step_share == pytest.approx(1 / 3)
    assert "line 6: wrong" in result.error


def test_more_than_k_citations_is_refused_even_when_true():
    result = check_proof(*CHAIN, "5. d >= 9 [1, 2, 3, 4]")
    assert statuses(result) == ["citation"] and not result.complete
    assert check_proof(*CHAIN, "5. d >= 9 [1, 2, 3, 4]", CheckLimits(max_citations=4)).complete  # K is a setting


def test_restating_a_deep_goal_in_one_line_fails():
    """Two citations cannot carry a goal that needs four premises: the oracle is not asked for the whole proof."""
    for cites in ("[1, 2]", "[3, 4]", "[1, 4]", ""):
        result = check_proof(*CHAIN, f"5. d >= 9 {cites}")
        assert statuses(result) == ["wrong"], cites


def test_circular_and_dangling_citations():
    assert statuses(check_proof(*CHAIN, "5. b == 7 [5, 2]")) == ["citation"]  # cites itself
    assert statuses(check_proof(*CHAIN, "5. b == 7 [6, 2]\n6. b == 7 [5, 2]"))[0] == "citation"  # a later line
    assert statuses(check_proof(*CHAIN, "5. b == 7 [0, 2]")) == ["citation"]
    assert statuses(check_proof(*CHAIN, "5. b == 7 [1, x]")) == ["citation"]


def test_numbering_undefined_names_and_the_goal():
    assert statuses(check_proof(*CHAIN, "6. b == 7 [1, 2]")) == ["numbering"]
    assert statuses(check_proof(*CHAIN, "b == 7 [1, 2]")) == ["numbering"]  # not a numbered line at all
    assert statuses(check_proof(*CHAIN, "5. z == 7 [1, 2]")) == ["undefined"]  # z is in no premise
    assert statuses(check_proof(*CHAIN, "5. Q [1, 2]")) == ["undefined"]
    result = check_proof(*CHAIN, "5. b == 7 [1, 2]\n6. c >= 14 [5, 3]")
    assert statuses(result) == ["verified", "verified"] and not result.complete and "not the goal" in result.error
    assert check_proof(*CHAIN, "") .error == "no proof lines"


@pytest.mark.parametrize("text, reason", [
    ("a ==", "end of formula"),
    ("a == 1 b", "after a complete formula"),
    ("(a == 1", "expected ')'"),
    ("a + 1", "integer term"),
    ("a == 1 and 3", "true/false"),
    ("a % b == 0", "positive integer literal"),
    ("a // 0 == 1", "positive integer literal"),
    ("a == 12345678901234567", "digits"),
    ("a == 1; b == 2", "unexpected character"),
])
def test_syntax_errors_name_the_reason(text, reason):
    with pytest.raises(FormulaError, match=re.escape(reason)):
        parse_formula(text)
    assert statuses(check_proof(*CHAIN, f"5. {text} [1, 2]")) in (["syntax"],)


@pytest.mark.parametrize("attack", [
    "__import__('os').system('touch /tmp/pwned') == 0",
    "eval('1') == 1",
    "a.__class__ == 1",
    "(lambda: 1)() == 1",
    "[a for a in b] == 1",
    "a == 1 # comment",
    "a == 0x10",
    "a == 1e9",
])
def test_inputs_that_try_to_leave_the_parser_are_syntax_errors(attack):
    with pytest.raises(FormulaError):
        parse_formula(attack)


def test_huge_and_deep_input_is_refused_quickly():
    start = time.monotonic()
    megabyte = "5. " + " + ".join(["a"] * 250_000) + " == 1 [1, 2]"
    assert check_proof(*CHAIN, megabyte).error.startswith("proof longer than")
    one_line = "5. " + "(" * 300 + "a == 4" + ")" * 300 + " [1]"
    assert statuses(check_proof(*CHAIN, one_line)) == ["syntax"]  # longer than a formula may be
    deep = "5. " + "not " * 60 + "a == 4 [1]"
    assert statuses(check_proof(*CHAIN, deep)) == ["syntax"]  # nested deeper than MAX_DEPTH
    many = "\n".join(f"{n}. a == 4 [1]" for n in range(5, 200))
    assert check_proof(*CHAIN, many).error.startswith("more than")
    assert time.monotonic() - start < 2.0


def test_nonlinear_terms_that_z3_cannot_settle_are_bounded_and_not_verified():
    hard = (["x > 1", "y > 1"], "x * x * x + y * y * y != z * z * z + 33 * w * w * w")
    start = time.monotonic()
    result = check_proof(*hard, f"3. {hard[1]} [1, 2]", CheckLimits(line_timeout_ms=500))
    assert statuses(result) == ["unknown"] and not result.complete
    assert time.monotonic() - start < 3.0


def test_printing_is_canonical_and_parses_back():
    for text in ["a + b * c == (a + b) * c", "not (P and Q) -> R or S", "P -> Q -> R", "(P -> Q) -> R",
                 "a - (b - c) == a - b + c", "-a * -3 >= -(a + 1)", "(a % 3 + b // 2) % 3 != 0", "P == (a < b)"]:
        f = parse_formula(text)
        assert parse_formula(str(f)) == f, text
    assert str(parse_formula("P->Q->R")) == "P -> Q -> R"
    assert str(parse_formula("(P->Q)->R")) == "(P -> Q) -> R"
