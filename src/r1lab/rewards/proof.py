"""Proof rewards: a numbered proof in the `<answer>` block, checked line by line by Z3 (`r1lab.logic`).

- `proof`: 1.0 when every line is verified (its cited lines alone entail it, at most K = 2 citations) and the
  last line is the goal; else 0.0. The outcome reward.
- `proof_steps`: the share of lines verified before the first one that is not: a rule-based *process* reward,
  which credits a proof that goes right for a while without asking a learned model whether a step is good.
- `proof_verified_lines`: the number of lines verified before the first failure (weight 0 in a config makes it
  a logged metric beside the other two).
The problem comes from the record's `metadata` column (`premises`, `goal`, as the `proof` task writes them); a
row without them, a problem that does not parse, or a completion with no numbered proof line in its answer
block cannot be judged: None. Checking runs in the rewards' killable verifier process (Z3 time and resource
limits inside it, its memory capped, killed past `timeout_s`), so hostile proofs cost bounded time; a check
that does not finish scores 0.0 and counts a `proof` time-out.

    from r1lab.rewards.proof import check_proof   # the checker itself, in-process
"""

from __future__ import annotations

from typing import Any

from r1lab.data.answer import answer_block
from r1lab.logic import CheckLimits, ProofCheck, check_proof, parse_proof
from r1lab.rewards.registry import column, record_timeout, register_reward, with_prefill
from r1lab.rewards.verifier import shared_verifier

__all__ = ["CheckLimits", "ProofCheck", "check_proof", "proof_verdicts"]
DEFAULT_TIMEOUT_S = 10.0


def _problem(meta: Any) -> tuple[list[str], str] | None:
    if not isinstance(meta, dict) or not isinstance(meta.get("goal"), str):
        return None
    premises = meta.get("premises")
    if not isinstance(premises, list) or not all(isinstance(p, str) for p in premises):
        return None
    return premises, meta["goal"]


def proof_verdicts(completions, metadata, prefill=None, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[dict | None]:
    """Per completion: the verifier's reply ({complete, verified_prefix, lines, statuses}), {"timeout": True},
    or None when it cannot be judged (see the module docstring)."""
    texts = with_prefill(completions, prefill)
    metas = column(metadata, len(texts), "metadata")
    out: list[dict | None] = []
    for text, meta in zip(texts, metas):
        problem, proof = _problem(meta), answer_block(text)
        if problem is None or proof is None or not any(n > 0 for n, _, _ in parse_proof(proof)):
            out.append(None)
            continue
        request = {"op": "proof", "premises": problem[0], "goal": problem[1], "proof": proof}
        try:
            reply = shared_verifier().request(request, timeout_s)
        except RuntimeError:  # the verifier process cannot start: no verdict, as for a time-out
            reply = None
        if reply is None or reply.get("timeout"):
            record_timeout("proof")
            out.append({"timeout": True})
        elif "complete" in reply:
            out.append(reply)
        else:  # invalid problem text, or an error inside the checker
            out.append(None)
    return out


def _score(verdict: dict | None, value) -> float | None:
    if verdict is None:
        return None
    if verdict.get("timeout"):
        return 0.0
    return value(verdict)


def make_proof(timeout_s: float = DEFAULT_TIMEOUT_S):
    def proof(completions, metadata=None, prefill=None, **_) -> list[float | None]:
        return [_score(v, lambda v: float(v["complete"]))
                for v in proof_verdicts(completions, metadata, prefill, timeout_s)]

    return proof


def make_proof_steps(timeout_s: float = DEFAULT_TIMEOUT_S):
    def proof_steps(completions, metadata=None, prefill=None, **_) -> list[float | None]:
        return [_score(v, lambda v: v["verified_prefix"] / v["lines"])
                for v in proof_verdicts(completions, metadata, prefill, timeout_s)]

    return proof_steps


def make_proof_verified_lines(timeout_s: float = DEFAULT_TIMEOUT_S):
    def proof_verified_lines(completions, metadata=None, prefill=None, **_) -> list[float | None]:
        return [_score(v, lambda v: float(v["verified_prefix"]))
                for v in proof_verdicts(completions, metadata, prefill, timeout_s)]

    return proof_verified_lines


register_reward("proof", factory=make_proof)
register_reward("proof_steps", factory=make_proof_steps)
register_reward("proof_verified_lines", factory=make_proof_verified_lines)
