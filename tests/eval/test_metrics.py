"""pass@k, majority vote and bootstrap intervals against closed forms and brute-force enumeration."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from r1lab.eval import bootstrap_ci, maj_at_k, majority_vote, pass_at_k
from r1lab.eval.metrics import default_ks


def brute_force_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """Share of all k-subsets of the n samples that contain at least one correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(samples[i] for i in s) for s in subsets), len(subsets))


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_equals_enumeration_over_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(float(brute_force_pass_at_k(n, c, k)), abs=1e-12)


def test_pass_at_k_closed_forms():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 = c/n
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 6, 5) == 1.0  # n - c < k: every 5-subset holds a correct sample
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))  # = 1/2


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
    assert pass_at_k(2000, 1, 1000) == pytest.approx(0.5)  # c = 1: exactly k/n
    exact = 1 - Fraction(math.comb(1900, 1000), math.comb(2000, 1000))
    assert pass_at_k(2000, 100, 1000) == pytest.approx(float(exact), rel=1e-12)
    assert math.comb(2000, 1000) > 1e300  # the naive ratio of floats would overflow


def test_pass_at_k_is_monotone_in_k_and_c():
    n = 16
    for c in range(n + 1):
        values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
        assert all(a <= b + 1e-15 for a, b in zip(values, values[1:]))
    assert all(pass_at_k(n, c, 4) <= pass_at_k(n, c + 1, 4) for c in range(n))


def test_pass_at_k_rejects_impossible_counts():
    for bad in [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)
    with pytest.raises(TypeError):
        pass_at_k(4.0, 2, 1)


def naive_vote(keys):
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    best = max(counts.values())
    winners = {k for k, v in counts.items() if v == best}
    return min(i for i, k in enumerate(keys) if k in winners)


def test_majority_vote_matches_naive_enumeration():
    rng = random.Random(0)
    for _ in range(2000):
        keys = [rng.choice(["a", "b", "c", None]) for _ in range(rng.randint(0, 7))]
        assert majority_vote(keys) == naive_vote(keys)


def test_majority_vote_rules():
    assert majority_vote(["b", "a", "a"]) == 1
    assert majority_vote(["a", "b", "b", "a"]) == 0  # tie: the answer seen first
    assert majority_vote([None, None, None, "x"]) == 3  # unparseable never wins, even as the plurality
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_maj_at_k_votes_over_extracted_canonical_answers():
    completions = [
        "<answer>7</answer>", "<answer>1/2</answer>", "<answer>0.5</answer>", "no answer", "no answer",
        "<answer>\\frac{1}{2}</answer>", "<answer>7</answer>",
    ]
    assert maj_at_k(completions, "0.5") == 1.0  # 1/2, 0.5 and \frac{1}{2} vote together (3 > 2 > unparseable)
    assert maj_at_k(completions, "7") == 0.0
    assert maj_at_k(completions, "7", k=2) == 1.0  # only the first k samples vote: 7 vs 1/2, 7 seen first
    assert maj_at_k(["nothing", "here"], "7") == 0.0
    assert maj_at_k(["#### 7"], "7") == 1.0 and maj_at_k(["#### 7"], "7", fallbacks=()) == 0.0


def test_maj_at_k_accepts_a_custom_grader():
    assert maj_at_k(["<answer>Paris</answer>"] * 2, "paris", grade=lambda a, g: a.lower() == g) == 1.0


def exact_bootstrap_quantiles(values, alpha):
    """Every equally likely resample of a tiny set, enumerated."""
    means = sorted(np.mean(s) for s in itertools.product(values, repeat=len(values)))
    return np.quantile(means, [alpha / 2, 1 - alpha / 2])


def test_bootstrap_matches_the_enumerated_resampling_distribution():
    values = [0.0, 1.0, 1.0, 0.5]
    lo, hi = bootstrap_ci(values, resamples=40_000, seed=1)
    exact_lo, exact_hi = exact_bootstrap_quantiles(values, 0.05)
    assert lo == pytest.approx(exact_lo, abs=0.07) and hi == pytest.approx(exact_hi, abs=0.07)
    assert lo <= np.mean(values) <= hi


def test_bootstrap_is_seeded_degenerate_and_narrows_with_more_problems():
    values = [1.0, 0.0] * 10
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci([0.4] * 7) == (pytest.approx(0.4), pytest.approx(0.4))
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    narrow = bootstrap_ci([1.0, 0.0] * 200, seed=0)
    wide = bootstrap_ci([1.0, 0.0] * 5, seed=0)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_default_ks():
    assert default_ks(1) == [1]
    assert default_ks(8) == [1, 2, 4, 8]
    assert default_ks(6) == [1, 2, 4, 6]
