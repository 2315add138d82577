"""Check a numbered proof line by line with Z3: each line must follow from the lines it cites, and nothing else.

A problem has numbered premises (1..P) and a goal. A proof continues the numbering, one line each:

    P+1. formula [i, j]        the citations (premises or earlier lines) in brackets; `[by i, j]` also reads

A line is verified when its cited formulas alone entail it: Z3 finds ``cited ∧ ¬line`` unsatisfiable. At most
`max_citations` (K, default 2) per line, so a deep goal cannot be handed to the solver in one step: the proof has
to be built from small steps, which is what makes `proof_steps` a process reward and not an oracle call. The proof
is complete when every line is verified and the last one is the goal (the same formula, printed canonically).
`unknown` (a time-out or resource limit) counts as not verified. Z3 runs with a resource limit (deterministic on
every machine) and a time limit per line, and a total budget per proof; callers that need a hard bound on memory
and time run this in the rewards' killable worker process.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Sequence

from r1lab.errors import ConfigError
from r1lab.logic.syntax import COMPARISONS, Formula, FormulaError, parse_formula

_LINE = re.compile(r"^\s*(\d{1,4})\s*[.):]\s*(.*?)\s*(?:\[\s*(?:by\s+)?([^\]]*)\])?\s*$")
STATUSES = ("verified", "wrong", "unknown", "syntax", "citation", "undefined", "numbering", "limit")


@dataclass(frozen=True)
class CheckLimits:
    max_citations: int = 2  # K: premises/lines a single step may use
    max_lines: int = 40
    max_chars: int = 8_000  # the whole proof text
    max_formula_nodes: int = 200
    line_timeout_ms: int = 1_000
    line_rlimit: int = 2_000_000  # Z3 resource units per line: the same verdict on any machine
    total_timeout_ms: int = 5_000  # all lines of one proof together


@dataclass(frozen=True)
class LineVerdict:
    number: int
    text: str
    status: str  # one of STATUSES
    message: str = ""
    citations: tuple[int, ...] = ()

    @property
    def verified(self) -> bool:
        return self.status == "verified"


@dataclass
class ProofCheck:
    lines: list[LineVerdict] = field(default_factory=list)
    complete: bool = False  # every line verified and the last one is the goal
    error: str = ""  # why the proof as a whole failed ("" when complete)

    @property
    def verified_prefix(self) -> int:
        """Lines verified before the first line that is not."""
        n = 0
        for line in self.lines:
            if not line.verified:
                break
            n += 1
        return n

    @property
    def step_share(self) -> float:
        return self.verified_prefix / len(self.lines) if self.lines else 0.0


def _z3():
    try:
        import z3  # optional: the `proofs` extra
    except ImportError:
        raise ConfigError("formal proofs need z3-solver: pip install 'r1lab[proofs]'") from None
    return z3


def to_z3(f: Formula, z3, names: dict):
    """The Z3 term of a formula; `names` caches one constant per variable/proposition."""
    op, a = f.op, f.args
    if op == "int":
        return z3.IntVal(f.value)
    if op == "bool":
        return z3.BoolVal(f.value)
    if op in ("var", "prop"):
        if f.value not in names:
            names[f.value] = z3.Int(f.value) if op == "var" else z3.Bool(f.value)
        return names[f.value]
    x = [to_z3(arg, z3, names) for arg in a]
    if op == "neg":
        return -x[0]
    if op == "not":
        return z3.Not(x[0])
    if op == "and":
        return z3.And(x[0], x[1])
    if op == "or":
        return z3.Or(x[0], x[1])
    if op == "->":
        return z3.Implies(x[0], x[1])
    if op == "+":
        return x[0] + x[1]
    if op == "-":
        return x[0] - x[1]
    if op == "*":
        return x[0] * x[1]
    if op == "//":
        return x[0] / x[1]  # Z3's integer division: Euclidean, = Python's // for the positive divisors allowed
    if op == "%":
        return x[0] % x[1]
    if op in COMPARISONS:
        return {"==": x[0] == x[1], "!=": x[0] != x[1], "<": x[0] < x[1], "<=": x[0] <= x[1],
                ">": x[0] > x[1], ">=": x[0] >= x[1]}[op]
    raise FormulaError(f"unknown operator {op!r}")


def parse_proof(text: str) -> list[tuple[int, str, tuple[int, ...] | None]]:
    """(number, formula text, citations or None when the line has none) for every non-blank line; a line that
    does not have the `N. formula [i, j]` shape comes back with number -1 and the whole line as its text."""
    out = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        m = _LINE.match(raw)
        if m is None:
            out.append((-1, raw.strip(), None))
            continue
        cites = None
        if m.group(3) is not None:
            parts = [p.strip() for p in m.group(3).replace(";", ",").split(",") if p.strip()]
            cites = tuple(int(p) if p.isdigit() else -1 for p in parts)
        out.append((int(m.group(1)), m.group(2), cites))
    return out


def check_proof(premises: Sequence[str], goal: str, proof: str, limits: CheckLimits = CheckLimits()) -> ProofCheck:
    """Verify `proof` (the text inside `<answer>`) for the problem `premises` ⊢ `goal` (see the module docstring).
    Premises and goal are trusted problem text; a premise or goal that does not parse raises `FormulaError`."""
    z3 = _z3()
    known = {i + 1: parse_formula(p) for i, p in enumerate(premises)}
    goal_f = parse_formula(goal)
    vocabulary = set().union(goal_f.names(), *(f.names() for f in known.values()))
    result = ProofCheck()
    if len(proof) > limits.max_chars:
        result.error = f"proof longer than {limits.max_chars} characters"
        return result
    lines = parse_proof(proof)
    if not lines:
        result.error = "no proof lines"
        return result
    if len(lines) > limits.max_lines:
        result.error = f"more than {limits.max_lines} lines"
        return result
    names: dict = {}
    deadline = time.monotonic() + limits.total_timeout_ms / 1000
    expected = len(premises) + 1
    for number, text, cites in lines:
        budget_ms = 1000 * (deadline - time.monotonic())
        verdict = _check_line(z3, names, known, vocabulary, number, text, cites or (), expected, limits, budget_ms)
        result.lines.append(verdict)
        if verdict.status not in ("syntax", "numbering"):
            known[number] = parse_formula(text)  # later lines may cite it; a wrong line still breaks `complete`
        expected += 1
    last = result.lines[-1]
    all_verified = all(v.verified for v in result.lines)
    is_goal = last.status != "syntax" and last.number > 0 and str(known.get(last.number)) == str(goal_f)
    result.complete = all_verified and is_goal
    if not all_verified:
        first = next(v for v in result.lines if not v.verified)
        result.error = f"line {first.number}: {first.status}" + (f" ({first.message})" if first.message else "")
    elif not is_goal:
        result.error = f"the last line is not the goal {goal_f}"
    return result


def _check_line(z3, names, known, vocabulary, number, text, cites, expected, limits, budget_ms) -> LineVerdict:
    def verdict(status: str, message: str = "") -> LineVerdict:
        return LineVerdict(number, text, status, message, tuple(cites))

    if number != expected:
        return verdict("numbering", f"expected line {expected}" if number > 0 else "not a 'N. formula [i, j]' line")
    try:
        formula = parse_formula(text)
    except FormulaError as e:
        return verdict("syntax", str(e))
    if formula.size() > limits.max_formula_nodes:
        return verdict("limit", f"formula of more than {limits.max_formula_nodes} nodes")
    unknown = sorted(formula.names() - vocabulary)
    if unknown:
        return verdict("undefined", f"{', '.join(unknown)} not in the premises or the goal")
    if len(cites) > limits.max_citations:
        return verdict("citation", f"cites {len(cites)} lines; at most {limits.max_citations}")
    for c in cites:
        if c < 1 or c >= number:
            return verdict("citation", f"cites {c}, which is not a premise or an earlier line")
    if budget_ms <= 0:
        return verdict("unknown", "the proof's time budget is spent")
    solver = z3.Solver()
    solver.set("timeout", int(min(limits.line_timeout_ms, budget_ms)))
    solver.set("rlimit", limits.line_rlimit)
    for c in set(cites):
        solver.add(to_z3(known[c], z3, names))
    solver.add(z3.Not(to_z3(formula, z3, names)))
    answer = solver.check()
    if answer == z3.unsat:
        return verdict("verified")
    if answer == z3.sat:
        return verdict("wrong", "the cited lines do not entail it")
    return verdict("unknown", solver.reason_unknown())
