"""Child process that runs math-verify (and task verifiers) for the parent's `VerifierProcess`.

Why a process: sympy can spend unbounded time inside C code (``10^{10^{10}}`` never returns and no signal
interrupts it), and math-verify's own signal-based time-out only works in the main thread. The parent
kills this process when a request overruns; here, an interval timer interrupts the slow-but-interruptible
cases first so the process usually survives.

Protocol: one JSON object per line on stdin, one JSON reply per line on the original stdout.
  {"op": "math", "pred": str, "gold": str, "timeout_s": float}            -> {"match": bool}
  {"op": "task", "task": str, "pred": str, "gold": str, "metadata": ..., "timeout_s": float}
                                                                         -> {"match": bool}
                                                                            or {"unknown_task": true}
  {"op": "proof", "premises": [str], "goal": str, "proof": str, "timeout_s": float}
                                      -> {"complete": bool, "verified_prefix": int, "lines": int, "statuses": [str]}
                                         or {"invalid_problem": "..."} (premises or goal that do not parse)
Any reply may instead be {"timeout": true} or {"error": "..."}.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys

from r1lab.data import verify_answer
from r1lab.data.tasks.base import get_task
from r1lab.logic import FormulaError, check_proof

MEMORY_LIMIT_BYTES = 4 * 2**30
Z3_MEMORY_MB = 1024


class _Overrun(BaseException):
    """Raised by the interval timer; a BaseException so library code's `except Exception` cannot swallow it."""


def _on_alarm(signum, frame):
    raise _Overrun()


def _parse(text: str, parse) -> list:
    """Bare LaTeX (``2\\sqrt{2}``, ``x^2+1``) and structured answers (``2, 3``, ``(1, 2)``, ``[0, 1)``) are read as
    one math expression, so a list, set, tuple or interval is compared whole and never by its last number (as
    math-verify does given the LaTeX form); prose is read as prose."""
    attempts = [text]
    if "$" not in text:
        structured = "," in text or text.lstrip()[:1] in ("(", "[", "{")
        looks_latex = structured or any(mark in text for mark in ("\\", "^", "_", "{"))
        attempts = [f"${text}$", text] if looks_latex else [text, f"${text}$"]
    for attempt in attempts:
        found = parse(attempt, parsing_timeout=None)
        if found:
            return found
    return []


def _math(req: dict) -> dict:
    from math_verify import parse, verify  # slow import, paid where used

    gold = _parse(req["gold"], parse)
    pred = _parse(req["pred"], parse)
    if not gold or not pred:
        return {"match": False}
    return {"match": bool(verify(gold, pred, timeout_seconds=None))}


def _task(req: dict) -> dict:
    """The task's own verifier, or {"unknown_task": true} when r1lab.data has no such task (caller falls back)."""
    try:
        get_task(req["task"])
    except Exception:
        return {"unknown_task": True}
    return {"match": bool(verify_answer(req["task"], req["pred"], req["gold"], req.get("metadata")))}


def _proof(req: dict) -> dict:
    """A proof checked line by line with Z3 (`r1lab.logic`); Z3's memory is capped below this process's."""
    import z3  # optional: the `proofs` extra (the checker names it when missing)

    z3.set_param("memory_max_size", Z3_MEMORY_MB)
    try:
        result = check_proof(req["premises"], req["goal"], req["proof"])
    except FormulaError as e:
        return {"invalid_problem": str(e)}
    return {"complete": result.complete, "verified_prefix": result.verified_prefix, "lines": len(result.lines),
            "statuses": [line.status for line in result.lines]}


def _cap_cpu(budget_s: float) -> None:
    """Let this request use at most budget + 2 more CPU seconds (SIGXCPU kills the process beyond), so even
    an orphaned worker stuck in C code stops on its own; the parent normally kills it long before."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + budget_s + 2.999)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    sys.stdout = sys.stderr  # nothing a library prints can corrupt the protocol stream
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ValueError, OSError):
        pass
    logging.disable(logging.CRITICAL)
    signal.signal(signal.SIGALRM, _on_alarm)
    import math_verify  # noqa: F401  (pay the import before saying ready)

    out.write('{"ready": true}\n')
    for line in sys.stdin:
        try:
            req = json.loads(line)
            handler = {"math": _math, "task": _task, "proof": _proof}[req["op"]]
        except Exception as e:  # a malformed request is the parent's bug; answer rather than die
            out.write(json.dumps({"error": f"bad request: {e}"}) + "\n")
            continue
        try:
            budget = max(0.01, float(req.get("timeout_s", 5.0)))
            _cap_cpu(budget)
            signal.setitimer(signal.ITIMER_REAL, budget)
            try:
                reply = handler(req)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Overrun:  # also catches a timer that fires inside the `finally` above
            reply = {"timeout": True}
        except RecursionError:
            reply = {"error": "recursion"}
        except MemoryError:
            reply = {"error": "memory"}
        except Exception as e:
            reply = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        out.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
