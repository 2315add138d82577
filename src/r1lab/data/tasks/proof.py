"""`proof`: premises and a goal whose shortest proof, at most K = 2 citations a line, has `depth` lines.

Three domains (`domain=lia|parity|prop|mix`, default mix):
- `lia`, linear integer arithmetic: ``a == 4``, ``b == a + 3``, ``c >= 2 * b`` ⊢ ``c >= 14``;
- `parity`, elementary number theory: residues carried through sums, multiples and squares,
  ``a % 3 == 2``, ``b == a * a``, ``c == b + 3 * w`` ⊢ ``c % 3 == 1``;
- `prop`, propositional chains written as implications, contrapositives and disjunctions,
  ``P``, ``P -> Q``, ``not R -> not Q`` ⊢ ``R``.
Each problem is a chain: a starting fact and `depth` links, every one needed, so under the two-citation rule a
proof needs at least `depth` lines (each line joins at most one more premise into what is known) and the generated
proof has exactly that many. `distractors` (default 1) adds premises about other names, and premises are listed
in shuffled order, so a prover has to find which lines to cite. Variable and proposition names are drawn per
problem. Problems are disjoint between splits by construction (`collect_problems`).

The worked solution (`steps`) is the proof itself; the answer block holds it, and a reflective trace drafts it in
the think block with one wrong line caught by "wait, let me check:" and corrected. Grading: `r1lab.logic`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from r1lab.data.tasks.base import collect_problems, register_task, split_gold
from r1lab.data.tasks.synthetic import Step, SyntheticTask, parse_range
from r1lab.errors import DataError
from r1lab.logic import FormulaError, check_proof

DOMAINS = ("lia", "parity", "prop")
INT_NAMES = tuple("abcdefghkmnpqrstuvwxyz")
PROP_NAMES = tuple("ABCDEFGHJKLMNPQRSTUVWXYZ")
INSTRUCTION = ("Prove the goal. Continue the numbering; end each line with the (at most 2) earlier lines it "
               "follows from, in [ ].")


@dataclass(frozen=True)
class ProofStep(Step):
    """One proof line: `number. fact [cites]`; `value` is the number in the fact (a slip changes it)."""

    number: int = 0
    fact: str = ""  # the formula, with "{v}" where `value` goes
    cites: tuple[int, ...] = ()

    def line(self, value: int | None = None) -> str:
        v = self.value if value is None else value
        return f"{self.number}. {self.fact.format(v=v)} [{', '.join(map(str, self.cites))}]"


def _lia_chain(rng: random.Random, depth: int, names: list[str]) -> tuple[list[str], list[tuple[str, int]]]:
    """Premises (start first) and the derived facts ("{v}" template, value) of a linear chain."""
    start = rng.randint(0, 20)
    relation = "==" if rng.random() < 0.5 else ">="
    premises = [f"{names[0]} {relation} {start}"]
    facts, value = [], start
    for prev, cur in zip(names[:depth], names[1:depth + 1]):
        kind = rng.choice(["+", "-", "*"])
        link = "==" if relation == "==" or rng.random() < 0.5 else ">="
        if kind == "*":
            m = rng.choice([2, 3])
            premises.append(f"{cur} {link} {m} * {prev}")
            value *= m
        else:
            k = rng.randint(1, 9)
            premises.append(f"{cur} {link} {prev} {kind} {k}")
            value = value + k if kind == "+" else value - k
        facts.append((f"{cur} {relation} " + "{v}", value))
    return premises, facts


def _parity_chain(rng: random.Random, depth: int, names: list[str]) -> tuple[list[str], list[tuple[str, int]]]:
    m = rng.choice([2, 3])
    residue = rng.randrange(m)
    premises = [f"{names[0]} % {m} == {residue}"]
    facts = []
    spare = names[depth + 1]  # a free variable for "+ m * w" links
    for prev, cur in zip(names[:depth], names[1:depth + 1]):
        kind = rng.choice(["add", "times", "square", "multiple"])
        if kind == "add":
            k = rng.randint(1, 9)
            premises.append(f"{cur} == {prev} + {k}")
            residue = (residue + k) % m
        elif kind == "times":  # a factor coprime to m: with a multiple of m the link alone would fix the residue
            k = rng.choice([f for f in range(2, 10) if f % m])
            premises.append(f"{cur} == {k} * {prev}")
            residue = (residue * k) % m
        elif kind == "square":
            premises.append(f"{cur} == {prev} * {prev}")
            residue = (residue * residue) % m
        else:
            premises.append(f"{cur} == {prev} + {m} * {spare}")
        facts.append((f"{cur} % {m} == " + "{v}", residue))
    return premises, facts


def _prop_chain(rng: random.Random, depth: int, names: list[str]) -> tuple[list[str], list[tuple[str, int]]]:
    premises = [names[0]]
    facts = []
    for prev, cur in zip(names[:depth], names[1:depth + 1]):
        premises.append(rng.choice([f"{prev} -> {cur}", f"not {cur} -> not {prev}", f"not {prev} or {cur}"]))
        facts.append((cur, 0))
    return premises, facts


_CHAINS = {"lia": _lia_chain, "parity": _parity_chain, "prop": _prop_chain}


def _distractor(rng: random.Random, domain: str, names: list[str]) -> str:
    a, b = names
    if domain == "prop":
        return rng.choice([f"{a} -> {b}", f"{a} or {b}", f"not {a}"])
    if domain == "parity":
        return f"{a} % {rng.choice([2, 3])} == {rng.randrange(2)}"
    return f"{a} {rng.choice(['==', '>=', '<='])} {b} + {rng.randint(1, 9)}"


@register_task("proof")
class ProofTask(SyntheticTask):
    """`proof?depth=2-4&domain=mix&distractors=1[&instruction=false]`: prove a goal from premises, line by line
    (see the module docstring); `instruction=false` leaves out the instruction line (tiny models trained from
    scratch learn the format from the corpus); `names=ordered` runs every chain through the alphabet in order
    instead of drawing names (premises are still shuffled), a gentler task for a model trained from scratch."""

    _known_options = frozenset({"depth", "domain", "distractors", "instruction", "names"})

    def __init__(self, target, options):
        super().__init__(target, options)
        if target is not None:
            raise DataError(f"task 'proof' takes no ':' target, got {target!r}")
        self.depth = parse_range(options.get("depth", "2-4"), "depth", 1, 8)
        domain = str(options.get("domain", "mix"))
        if domain != "mix" and domain not in DOMAINS:
            raise DataError(f"task 'proof': domain must be mix or one of {', '.join(DOMAINS)}, got {domain!r}")
        self.domains = DOMAINS if domain == "mix" else (domain,)
        self.distractors = int(options.get("distractors", 1))
        if not 0 <= self.distractors <= 4:
            raise DataError(f"task 'proof': distractors must be 0..4, got {self.distractors}")
        self.instruction = bool(options.get("instruction", True))  # false: short prompts for tiny models
        self.names = str(options.get("names", "random"))
        if self.names not in ("random", "ordered"):
            raise DataError(f"task 'proof': names must be random or ordered, got {self.names!r}")

    def _draw(self, rng, i):
        domain = rng.choice(self.domains)
        depth = rng.randint(*self.depth)
        pool = list(PROP_NAMES if domain == "prop" else INT_NAMES)
        if self.names == "random":  # "ordered": the chain runs through the alphabet (a, b, c, ...), easier to learn
            rng.shuffle(pool)
        chain = pool[: depth + 2]
        premises, facts = _CHAINS[domain](rng, depth, chain)
        others = pool[depth + 2:]
        extra = [_distractor(rng, domain, [others[2 * j], others[2 * j + 1]]) for j in range(self.distractors)]
        order = list(range(len(premises) + len(extra)))
        rng.shuffle(order)
        listed = [(premises + extra)[j] for j in order]
        position = {j: order.index(j) + 1 for j in range(len(premises))}  # chain premise j -> its line number
        goal_template, goal_value = facts[-1]
        goal = goal_template.format(v=goal_value)
        first = len(listed) + 1
        prompt = (f"{INSTRUCTION}\n" if self.instruction else "") + "Premises:\n" + \
            "\n".join(f"{n}. {p}" for n, p in enumerate(listed, 1)) + f"\nGoal: {goal}"
        steps = [[first + s, template, value, (position[0] if s == 0 else first + s - 1, position[s + 1])]
                 for s, (template, value) in enumerate(facts)]
        return prompt, goal, {"premises": listed, "goal": goal, "domain": domain, "depth": depth, "proof": steps}

    def records(self, split, size, seed):
        return collect_problems(self.name, split, size, seed, self._draw)

    # --- grading ----------------------------------------------------------------------------------------
    def score(self, answer_text, gold, metadata=None) -> float:
        _, meta = split_gold(gold, metadata)
        if answer_text is None or "premises" not in meta:
            return 0.0
        try:
            return float(check_proof(meta["premises"], meta["goal"], answer_text).complete)
        except FormulaError:
            return 0.0

    # --- worked solutions -------------------------------------------------------------------------------
    def steps(self, record):
        return [ProofStep(lhs="", value=value, number=number, fact=fact, cites=tuple(cites))
                for number, fact, value, cites in record["metadata"]["proof"]]

    def answer_text(self, record):
        return "\n".join(step.line() for step in self.steps(record))

    def check_line(self, record):
        return f"check: the last line is the goal {record['metadata']['goal']}"

    def is_hard(self, record):
        return record["metadata"]["depth"] >= 3

    def difficulty(self, record):
        return int(record["metadata"]["depth"])

    def judge_line(self, record, line):
        """A numbered line compared with the worked proof's line of that number (spacing aside)."""
        m = re.match(r"\s*(\d+)\.\s*(.*)$", line)
        if m is None:
            return None
        gold = {step.number: step.line() for step in self.steps(record)}
        number = int(m.group(1))
        if number not in gold:
            return None
        return " ".join(line.split()) == " ".join(gold[number].split())

    def slipped_line(self, step, rng):
        if "{v}" not in step.fact:  # a proposition: claim its negation
            return ProofStep(lhs="", value=0, number=step.number, fact=f"not {step.fact}", cites=step.cites).line()
        modulus = step.fact.split("%")[1].split("==")[0].strip() if "%" in step.fact else None
        delta = rng.choice([1, -1]) if modulus is None else rng.randint(1, int(modulus) - 1)
        value = step.value + delta if modulus is None else (step.value + delta) % int(modulus)
        return step.line(value)

    def wrong_answer(self, record, rng):
        steps = self.steps(record)
        k = rng.randrange(len(steps))
        return "\n".join(self.slipped_line(s, rng) if i == k else s.line() for i, s in enumerate(steps))
