"""r1lab's own arithmetic tasks for tiny models trained from scratch, with worked solutions by program.

Both tasks keep the problem in record metadata (operands, operators), so worked steps, checks and
plausible mistakes can be regenerated from a record read back from JSONL. Numbers are written without
spaces (`23+45-17+8=?`) to keep sequences short for a digit-level tokenizer.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from r1lab.data.tasks.base import Task, collect_problems, register_task, split_gold
from r1lab.errors import DataError

_INT = re.compile(r"[+-]?\d+(?:\.0*)?")
_STEP_LINE = re.compile(r"([^=\s]+)=(-?\d+)")  # "23+45=68" or "7+6=13 carry 1"


def parse_int(text: Any) -> int | None:
    """An integer answer written plainly ('59', ' 59. ', '1,234', '+7', '59.0'); None when it is not one."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if not isinstance(text, str) or len(text) > 64:
        return None
    t = text.strip().rstrip(".").replace(",", "").replace(" ", "")
    if not _INT.fullmatch(t):
        return None
    return int(t.split(".")[0])


def parse_range(value: Any, key: str, lo_bound: int = 1, hi_bound: int = 12) -> tuple[int, int]:
    """`3`, `"2-4"` or `[2, 4]` -> (lo, hi) inclusive, checked against bounds."""
    if isinstance(value, bool):
        raise DataError(f"task option {key}: expected an integer or a range 'lo-hi', got {value!r}")
    if isinstance(value, int):
        lo = hi = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*-\s*\d+\s*", value):
        lo, hi = (int(x) for x in value.split("-"))
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(x, int) for x in value):
        lo, hi = value
    else:
        raise DataError(f"task option {key}: expected an integer or a range 'lo-hi', got {value!r}")
    if not lo_bound <= lo <= hi <= hi_bound:
        raise DataError(f"task option {key}: range {lo}-{hi} outside {lo_bound}-{hi_bound}")
    return lo, hi


def random_number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 1, 10**digits - 1)


@dataclass(frozen=True)
class Step:
    """One line of a worked solution: `lhs=value`, plus ` carry c` for a column sum."""

    lhs: str
    value: int
    column: bool = False

    def line(self, value: int | None = None) -> str:
        v = self.value if value is None else value
        text = f"{self.lhs}={v}"
        if self.column and v >= 10:
            text += f" carry {v // 10}"
        return text

    def decomposed_line(self) -> str:
        """The step recomputed two terms at a time on the page, then restated: `7+8=15, 15+9=24, so 7+8+9=24
        carry 2`. A sum of three or more terms is otherwise one computation in the model's head; written out,
        each partial sum is an easy one, so the check is a different computation from the step it checks, not a
        second draw of the same one (whether it is the more reliable one is untested: notebook entry P)."""
        terms = self.lhs.split("+")
        if len(terms) < 3 or not all(t.isdigit() for t in terms):
            return self.line()
        partial, parts = int(terms[0]), []
        for t in terms[1:]:
            parts.append(f"{partial}+{t}={partial + int(t)}")
            partial += int(t)
        return f"{', '.join(parts)}, so {self.line()}"


def plausible_slip(value: int, rng: random.Random, column: bool = False) -> int:
    """A believable wrong result for one step (off by one, or a dropped/extra ten)."""
    deltas = [1, -1, 10, -10] if not column else [1, -1, 10, -10, 2, -2]
    rng.shuffle(deltas)
    for d in deltas:
        w = value + d
        if w >= 0 and w != value and (not column or w < 100):
            return w
    return value + 1


class SyntheticTask(Task):
    """Integer-answer tasks whose step-by-step solutions, checks and plausible errors come from a program."""

    has_traces = True
    _known_options: frozenset[str] = frozenset()

    def __init__(self, target: str | None, options: dict[str, Any]):
        super().__init__(target, options)
        unknown = set(options) - self._known_options
        if unknown:
            raise DataError(
                f"task {self.kind!r}: unknown option(s) {sorted(unknown)}; known: {sorted(self._known_options)}"
            )

    def score(self, answer_text, gold, metadata=None) -> float:
        gold_value, _ = split_gold(gold, metadata)
        want, got = parse_int(gold_value), parse_int(answer_text)
        return float(want is not None and got is not None and want == got)

    def records(self, split, size, seed):
        return collect_problems(self.name, split, size, seed, self._draw)

    # --- worked solutions -------------------------------------------------------------------------
    def steps(self, record: dict) -> list[Step]:
        raise NotImplementedError

    def check_line(self, record: dict) -> str:
        raise NotImplementedError

    def is_hard(self, record: dict) -> bool:
        """Hard enough that answering with no working is unreliable (carries, borrows, several steps)."""
        raise NotImplementedError

    def difficulty(self, record: dict) -> int:
        """A difficulty bucket (0 easiest): how many steps need a carry or borrow, for the length-per-difficulty
        ("adaptive thinking") metrics."""
        raise NotImplementedError

    def judge_line(self, record: dict, line: str) -> bool | None:
        """Whether `line` is one of the worked solution's steps written right (True) or with a wrong value
        (False); None for a line that is not one of its steps. Self-correction metrics read it."""
        values = {s.lhs: s.value for s in self.steps(record)}
        # the last step of the problem the line writes: a decomposed check ends with the step it restates
        found = [m for m in _STEP_LINE.finditer(line.strip()) if m.group(1) in values]
        if not found:
            return None
        return int(found[-1].group(2)) == values[found[-1].group(1)]

    def answer_text(self, record: dict) -> str:
        """What a worked solution writes in its answer block (the gold answer; a proof task writes its proof)."""
        return record["answer"]

    def hard_steps(self, record: dict) -> list[int]:
        """Indices of the steps people slip on (carries, borrows): where `slip_steps: hard` plants slips."""
        return list(range(len(self.steps(record))))

    def slipped_solution(self, record: dict, k: int, rng: random.Random) -> tuple[list[str], str]:
        """Worked lines and final answer when step `k` slips and nobody checks: the wrong value is carried on
        into every later step, so the answer is wrong the way an unchecked slip makes it wrong."""
        raise DataError(f"task {self.name!r} cannot carry a slip through to its answer; set cot_slip_rate to 0")

    def slipped_line(self, step: Step, rng: random.Random) -> str:
        """A step written with a plausible slip (the line a reflective trace then checks and corrects)."""
        return step.line(plausible_slip(step.value, rng, column=step.column))

    def wrong_answer(self, record: dict, rng: random.Random) -> str:
        """A plausible wrong final answer (off by a unit, a ten or a hundred)."""
        gold = int(record["answer"])
        scales = [1, 10, 100][: max(1, len(str(abs(gold))))]
        options = [gold + s * d for s in scales for d in (1, -1, 2, -2) if gold + s * d >= 0]
        options = [o for o in options if o != gold] or [gold + 1]
        return str(rng.choice(options))

    def _draw(self, rng: random.Random, i: int):
        raise NotImplementedError


@register_task("arith")
class ArithTask(SyntheticTask):
    """Multi-step integer arithmetic, e.g. `23+45-17+8=?`, worked left to right one operation per line.

    Options: `operands` (count, int or 'lo-hi', default 3), `digits` (width of each operand, default 2),
    `ops` (subset of '+-', default '+-'), `nonneg` (keep every running total >= 0, default true).
    """

    _known_options = frozenset({"operands", "digits", "ops", "nonneg"})

    def __init__(self, target, options):
        super().__init__(target, options)
        if target is not None:
            raise DataError(f"task 'arith' takes no ':' target, got {target!r}")
        self.n_operands = parse_range(options.get("operands", 3), "operands", 2, 12)
        self.digits = parse_range(options.get("digits", 2), "digits", 1, 9)
        self.ops = str(options.get("ops", "+-"))
        if not self.ops or set(self.ops) - set("+-"):
            raise DataError(f"task option ops: expected a non-empty subset of '+-', got {self.ops!r}")
        self.nonneg = bool(options.get("nonneg", True))

    def _draw(self, rng, i):
        n = rng.randint(*self.n_operands)
        nums = [random_number(rng, rng.randint(*self.digits)) for _ in range(n)]
        ops: list[str] = []
        acc = nums[0]
        for x in nums[1:]:
            op = rng.choice(self.ops)
            if op == "-" and self.nonneg and acc - x < 0:
                op = "+" if "+" in self.ops else op
            if op == "-" and self.nonneg and acc - x < 0:
                return None
            acc = acc + x if op == "+" else acc - x
            ops.append(op)
        expr = str(nums[0]) + "".join(f"{op}{x}" for op, x in zip(ops, nums[1:]))
        return f"{expr}=?", str(acc), {"operands": nums, "ops": ops}

    def steps(self, record):
        nums, ops = record["metadata"]["operands"], record["metadata"]["ops"]
        acc, out = nums[0], []
        for op, x in zip(ops, nums[1:]):
            nxt = acc + x if op == "+" else acc - x
            out.append(Step(f"{acc}{op}{x}", nxt))
            acc = nxt
        return out

    def hard_steps(self, record):
        return [i for i, s in enumerate(self.steps(record)) if _has_carry(s)]

    def slipped_solution(self, record, k, rng):
        nums, ops = record["metadata"]["operands"], record["metadata"]["ops"]
        acc, lines = nums[0], []
        for i, (op, x) in enumerate(zip(ops, nums[1:])):
            nxt = acc + x if op == "+" else acc - x
            if i == k:
                nxt = plausible_slip(nxt, rng)
            lines.append(Step(f"{acc}{op}{x}", nxt).line())
            acc = nxt
        return lines, str(acc)

    def check_line(self, record):
        nums, ops = record["metadata"]["operands"], record["metadata"]["ops"]
        last, op = nums[-1], ops[-1]
        prev = self.steps(record)[-2].value if len(nums) > 2 else nums[0]
        inv = "-" if op == "+" else "+"
        return f"check: {record['answer']}{inv}{last}={prev} ok"

    def is_hard(self, record):
        nums = record["metadata"]["operands"]
        if len(nums) > 2:
            return True
        return any(_has_carry(s) for s in self.steps(record))

    def difficulty(self, record):
        return sum(_has_carry(s) for s in self.steps(record)) + len(record["metadata"]["operands"]) - 2


def _has_carry(step: Step) -> bool:
    """Whether a two-operand step needs a carry or borrow in any digit."""
    m = re.fullmatch(r"(\d+)([+-])(\d+)", step.lhs)
    if not m:
        return True
    a, op, b = m.group(1), m.group(2), m.group(3)
    da, db = a[::-1], b[::-1]
    for k in range(max(len(da), len(db))):
        x = int(da[k]) if k < len(da) else 0
        y = int(db[k]) if k < len(db) else 0
        if (op == "+" and x + y >= 10) or (op == "-" and x < y):
            return True
    return False


@register_task("column_add")
class ColumnAddTask(SyntheticTask):
    """Column addition, e.g. `347+586=?`, worked one column per line from the units: `7+6=13 carry 1`.

    Options: `digits` (operand width, int or 'lo-hi', default 3), `operands` (addends, default 2).
    """

    _known_options = frozenset({"digits", "operands"})

    def __init__(self, target, options):
        super().__init__(target, options)
        if target is not None:
            raise DataError(f"task 'column_add' takes no ':' target, got {target!r}")
        self.digits = parse_range(options.get("digits", 3), "digits", 1, 12)
        self.n_operands = parse_range(options.get("operands", 2), "operands", 2, 6)

    def _draw(self, rng, i):
        n = rng.randint(*self.n_operands)
        nums = [random_number(rng, rng.randint(*self.digits)) for _ in range(n)]
        return "+".join(map(str, nums)) + "=?", str(sum(nums)), {"operands": nums}

    def steps(self, record):
        return _column_steps(record["metadata"]["operands"])

    def hard_steps(self, record):
        return [i for i, s in enumerate(self.steps(record)) if s.value >= 10]

    def slipped_solution(self, record, k, rng):
        steps = _column_steps(record["metadata"]["operands"], slip_at=k, rng=rng)
        carry = steps[-1].value // 10
        answer = sum((s.value % 10) * 10**i for i, s in enumerate(steps)) + carry * 10 ** len(steps)
        return [s.line() for s in steps], str(answer)

    def check_line(self, record):
        nums = record["metadata"]["operands"]
        return f"check: {record['answer']}-{nums[-1]}={int(record['answer']) - nums[-1]} ok"

    def is_hard(self, record):
        return any(s.value >= 10 for s in self.steps(record))

    def difficulty(self, record):
        return sum(s.value >= 10 for s in self.steps(record))


def _column_steps(nums: list[int], slip_at: int | None = None, rng: random.Random | None = None) -> list[Step]:
    """One step per column from the units; with `slip_at`, that column's sum slips and its carry moves on."""
    width = max(len(str(x)) for x in nums)
    carry, out = 0, []
    for k in range(width):
        col = [int(str(x)[::-1][k]) for x in nums if k < len(str(x))]
        terms = col + ([carry] if carry else [])
        total = sum(terms)
        if k == slip_at and rng is not None:
            total = plausible_slip(total, rng, column=True)
        out.append(Step("+".join(map(str, terms)), total, column=True))
        carry = total // 10
    return out
