"""`code`: run the completion's last fenced Python block against the `tests` column in the sandbox.

`tests` (per completion) is a list (or its JSON text) of tests of two kinds:
- ``{"input": str, "output": str}``: the program gets `input` on stdin and passes when its stdout equals
  `output` up to trailing whitespace on each line and trailing blank lines;
- ``{"code": str}``: assertion-style test code (HumanEval's ``check(candidate)``, MBPP's ``assert`` lines) run
  after the completion's code in the same program; it passes when the program exits 0. An optional
  ``"prefix"`` is code put in front of the completion's (HumanEval's stub: its imports and helpers, and a
  signature a body-only completion continues).
A single ``{"code": ...}`` may stand for a one-test list. Text that is not JSON cannot be judged (None).
Score = fraction of tests passed (`binary_code`, or ``all_or_nothing=True``: 1.0 only if all pass);
no code block -> 0.0; no tests -> None. Each test runs in a fresh `r1lab.rewards.sandbox.run_python`;
a test that overruns its CPU or wall limit fails, and a completion with any such test counts one
``code`` time-out. A per-completion budget (`total_wall_s`) stops further tests once spent.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from r1lab.rewards.registry import (
    column,
    completion_text,
    record_timeout,
    register_reward,
    with_prefill,
)
from r1lab.rewards.sandbox import SandboxLimits, run_python

PYTHON_TAGS = ("python", "py", "python3")


def last_python_block(text: str) -> str | None:
    """Body of the last closed ``` fence tagged python/py/python3; else of the last untagged fence; else None."""
    parts = text.split("```")
    tagged = untagged = None
    for i in range(1, len(parts) - 1, 2):  # odd parts are fence bodies closed by the next ```
        info, newline, body = parts[i].partition("\n")
        tag = info.strip().lower()
        if not newline:
            continue
        if tag in PYTHON_TAGS:
            tagged = body
        elif tag == "":
            untagged = body
    return tagged if tagged is not None else untagged


def normalize_output(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()).rstrip()


def _parse_tests(tests: Any) -> list[dict] | None:
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except ValueError:
            return None
    if isinstance(tests, dict):
        tests = [tests]
    if not isinstance(tests, (list, tuple)) or not tests:
        return None
    out = []
    for t in tests:
        if isinstance(t, dict) and isinstance(t.get("code"), str):
            prefix = t.get("prefix", "")
            if not isinstance(prefix, str):
                return None
            out.append({"code": t["code"], "prefix": prefix})
        elif isinstance(t, dict) and "input" in t and "output" in t:
            out.append({"input": str(t["input"]), "output": str(t["output"])})
        else:
            return None
    return out


def run_tests(code: str, tests: list[dict], limits: SandboxLimits, total_wall_s: float) -> tuple[int, bool]:
    """(tests passed, whether any test timed out or the budget ran out)."""
    passed, timed_out = 0, False
    start = time.monotonic()
    for test in tests:
        left = total_wall_s - (time.monotonic() - start)
        if left <= 0:
            return passed, True
        run_limits = SandboxLimits(**{**limits.__dict__, "wall_s": min(limits.wall_s, left)})
        if "code" in test:  # assertion style: the tests run after the solution, in the same program
            program = test["prefix"] + "\n" + code + "\n\n" + test["code"] + "\n"
            result = run_python(program, "", run_limits)
            ok = result.ok
        else:
            result = run_python(code, test["input"], run_limits)
            ok = result.ok and normalize_output(result.stdout) == normalize_output(test["output"])
        timed_out |= result.timed_out
        passed += ok
    return passed, timed_out


def make_code(
    cpu_s: float = 2.0,
    wall_s: float = 5.0,
    memory_mb: int = 512,
    total_wall_s: float = 30.0,
    all_or_nothing: bool = False,
    workers: int = 2,
):
    limits = SandboxLimits(cpu_s=cpu_s, wall_s=wall_s, memory_bytes=memory_mb * 2**20)

    def score_one(completion: Any, tests: Any) -> float | None:
        parsed = _parse_tests(tests)
        if parsed is None:
            return None
        code = last_python_block(completion_text(completion))
        if code is None or not code.strip():
            return 0.0
        passed, timed_out = run_tests(code, parsed, limits, total_wall_s)
        if timed_out:
            record_timeout("code")
        if all_or_nothing:
            return float(passed == len(parsed))
        return passed / len(parsed)

    def code(completions, tests=None, **_) -> list[float | None]:
        per_row = column(tests, len(completions), "tests")
        if workers <= 1 or len(completions) <= 1:
            return [score_one(c, t) for c, t in zip(completions, per_row)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(score_one, completions, per_row))

    return code


register_reward("code", factory=make_code)


def make_binary_code(cpu_s: float = 2.0, wall_s: float = 5.0, memory_mb: int = 512, total_wall_s: float = 30.0,
                     workers: int = 2):
    """`binary_code` (open-r1's name): `code` scoring 1.0 only when every test passes."""
    return make_code(cpu_s=cpu_s, wall_s=wall_s, memory_mb=memory_mb, total_wall_s=total_wall_s,
                     all_or_nothing=True, workers=workers)


def answer_code_blocks(text: str, language: str) -> list[str] | None:
    """The fenced blocks inside the `<answer>` block that follows `</think>`, with their language tags, or None
    when the completion does not have that shape."""
    think_end = text.find("</think>")
    if not text.lstrip().startswith("<think>") or think_end < 0:
        return None
    start = text.find("<answer>", think_end)
    end = text.rfind("</answer>")
    if start < 0 or end < start:
        return None
    parts = text[start + len("<answer>"):end].split("```")
    if len(parts) % 2 == 0:  # an unclosed fence
        return None
    return [parts[i].partition("\n")[0].strip().lower() for i in range(1, len(parts), 2)]


def make_code_format(language: str = "python"):
    """`code_format`: 1.0 when the answer after the `<think>` block holds exactly one fenced block, tagged with
    `language`; else 0.0 (open-r1's `code_format_reward`, without its line-anchoring)."""

    def code_format(completions, prefill=None, **_) -> list[float | None]:
        texts = with_prefill(completions, prefill)
        return [float(answer_code_blocks(t, language) == [language.lower()]) for t in texts]

    return code_format


register_reward("binary_code", factory=make_binary_code)
register_reward("code_format", factory=make_code_format)

