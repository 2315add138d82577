"""Local datasets (JSONL or Parquet) as tasks: GSM8K, MATH and TRL prompt/completion forms.

`file:<path>?format=gsm8k|math|trl|plain|auto&prompt=<col>&answer=<col>&...` A malformed line is a
`DataError` naming the file and line; records whose gold answer cannot be found are skipped *and counted*
(`task.last_report`, and a warning), or raise with `strict=true`. Answers are checked with math-verify
(equivalence, not string match).
"""

from __future__ import annotations

import json
import logging
import random
import re
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

from r1lab.data.records import canonical_split, make_record, split_of
from r1lab.data.tasks.base import Task, register_task, split_gold
from r1lab.errors import DataError
from r1lab.jsonl import iter_jsonl

log = logging.getLogger(__name__)

FORMATS = ("auto", "gsm8k", "math", "trl", "plain")
# default column names per format: (prompt, answer, solution, completion)
_COLUMNS = {
    "gsm8k": {"prompt": "question", "answer": None, "solution": "answer", "completion": None},
    "math": {"prompt": "problem", "answer": "answer", "solution": "solution", "completion": None},
    "trl": {"prompt": "prompt", "answer": "answer", "solution": None, "completion": "completion"},
    "plain": {"prompt": "prompt", "answer": "answer", "solution": None, "completion": None},
}
_OPTIONS = {"format", "prompt", "answer", "solution", "completion", "id", "partition", "strict"}
_MAX_ANSWER_CHARS = 10_000


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced; None when absent."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text):
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
            i += 1
    return None


def gsm8k_final(text: str) -> str | None:
    """The number after GSM8K's `####` marker, commas removed."""
    if "####" not in text:
        return None
    final = text.rsplit("####", 1)[1].strip()
    return final.replace(",", "").strip() or None


def answer_block(text: str) -> str | None:
    m = list(re.finditer(r"<answer>(.*?)</answer>", text, flags=re.S))
    return m[-1].group(1).strip() if m else None


def _message_text(value: Any, role: str | None = None) -> str | None:
    """A plain string, or the content of the last message (of `role`, if given) in a conversation."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        msgs = [m for m in value if isinstance(m, dict) and "content" in m]
        if role is not None:
            msgs = [m for m in msgs if m.get("role") == role] or msgs
        if msgs and isinstance(msgs[-1]["content"], str):
            return msgs[-1]["content"]
    return None


def _iter_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or row number starting at 1, parsed row); malformed JSON raises naming file and line."""
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq  # optional: only for Parquet files

            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises many types for a damaged file
            raise DataError(f"{path}: cannot read Parquet: {str(e).splitlines()[0]}") from None
        yield from enumerate(rows, start=1)
        return
    yield from iter_jsonl(path)


def _own_timeouts_safe() -> bool:
    """math-verify's time-outs use SIGALRM: only in the main thread, and only when no caller owns SIGALRM
    (r1lab.rewards' verifier process runs its own interval timer and bounds the time itself)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    return signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)


def math_equivalent(answer: str, gold: str) -> bool:
    """Equivalence of two math answers with math-verify ($-wrapped when bare, so LaTeX parses)."""
    from math_verify import parse, verify  # slow import, paid where used

    def wrap(t: str) -> str:
        return t if ("$" in t or "\\boxed" in t or "\\(" in t) else f"${t}$"

    timed = _own_timeouts_safe()
    g = parse(wrap(gold)) if timed else parse(wrap(gold), parsing_timeout=None)
    a = parse(wrap(answer)) if timed else parse(wrap(answer), parsing_timeout=None)
    if not g or not a:
        return False
    return bool(verify(g, a) if timed else verify(g, a, timeout_seconds=None))


@register_task("file")
class FileTask(Task):
    """A local JSONL/Parquet dataset; see the module docstring for options."""

    def __init__(self, target, options):
        super().__init__(target, options)
        if not target:
            raise DataError("task 'file' needs a path, e.g. 'file:data/train.jsonl?format=gsm8k'")
        unknown = set(options) - _OPTIONS
        if unknown:
            raise DataError(f"task 'file': unknown option(s) {sorted(unknown)}; known: {sorted(_OPTIONS)}")
        self.format = str(options.get("format", "auto"))
        if self.format not in FORMATS:
            raise DataError(f"task 'file': format must be one of {FORMATS}, got {self.format!r}")
        self.partition = str(options.get("partition", "none"))
        if self.partition not in ("none", "hash"):
            raise DataError(f"task 'file': partition must be 'none' or 'hash', got {self.partition!r}")
        self.strict = bool(options.get("strict", False))
        self.path = Path(target)
        self.last_report: dict[str, int] = {}

    # --- reading ---------------------------------------------------------------------------------
    def _detect(self, row: dict) -> str:
        keys = set(row)
        if {"question", "answer"} <= keys and isinstance(row["answer"], str) and "####" in row["answer"]:
            return "gsm8k"
        if "problem" in keys and ("solution" in keys or "answer" in keys):
            return "math"
        if "prompt" in keys and "completion" in keys:
            return "trl"
        if "prompt" in keys and "answer" in keys:
            return "plain"
        if "question" in keys and "answer" in keys:
            return "gsm8k"
        return "unknown"

    def _columns(self, fmt: str) -> dict[str, str | None]:
        cols = dict(_COLUMNS[fmt])
        for key in ("prompt", "answer", "solution", "completion"):
            if key in self.options:
                cols[key] = str(self.options[key])
        return cols

    def _gold(self, fmt: str, row: dict, cols: dict) -> str | None:
        if cols["answer"] and row.get(cols["answer"]) not in (None, ""):
            value = row[cols["answer"]]
            text = value if isinstance(value, str) else json.dumps(value)
            return (gsm8k_final(text) or text) if fmt == "gsm8k" else text
        sol = row.get(cols["solution"]) if cols["solution"] else None
        if isinstance(sol, str):
            found = gsm8k_final(sol) if fmt == "gsm8k" else None
            return found or last_boxed(sol) or answer_block(sol) or gsm8k_final(sol)
        comp = _message_text(row.get(cols["completion"]), "assistant") if cols["completion"] else None
        if isinstance(comp, str):
            return answer_block(comp) or last_boxed(comp) or gsm8k_final(comp)
        return None

    def read_all(self) -> tuple[list[dict], dict[str, int]]:
        if not self.path.is_file():
            raise DataError(f"{self.path}: dataset file not found")
        out, skipped, seen_rows = [], 0, 0
        fmt = None if self.format == "auto" else self.format
        for lineno, row in _iter_rows(self.path):
            seen_rows += 1
            if not isinstance(row, dict):
                raise DataError(f"{self.path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            if fmt is None:
                fmt = self._detect(row)
                if fmt == "unknown":
                    raise DataError(
                        f"{self.path}:{lineno}: cannot tell the format from columns {sorted(row)}; "
                        f"set format= and the column names (prompt=, answer=, ...)"
                    )
            cols = self._columns(fmt)
            prompt_value = row.get(cols["prompt"])
            prompt = _message_text(prompt_value, "user")
            if prompt is None:
                raise DataError(
                    f"{self.path}:{lineno}: missing or non-text prompt column {cols['prompt']!r} "
                    f"(columns: {sorted(row)})"
                )
            gold = self._gold(fmt, row, cols)
            if gold is None or not str(gold).strip():
                if self.strict:
                    raise DataError(f"{self.path}:{lineno}: no gold answer found ({fmt} format)")
                skipped += 1
                continue
            meta: dict[str, Any] = {"source": {"file": str(self.path), "line": lineno, "format": fmt}}
            if cols["solution"] and isinstance(row.get(cols["solution"]), str):
                meta["solution"] = row[cols["solution"]]
            if isinstance(prompt_value, list):
                meta["messages"] = prompt_value
            rec = make_record(self.name, prompt, str(gold).strip(), meta)
            if "id" in self.options and row.get(str(self.options["id"])) is not None:
                rec["id"] = str(row[str(self.options["id"])])
            else:
                rec["id"] = f"{self.path.stem}:{lineno}"
            out.append(rec)
        report = {"rows": seen_rows, "loaded": len(out), "skipped_no_answer": skipped}
        if skipped:
            log.warning("%s: skipped %d of %d records with no gold answer", self.path, skipped, seen_rows)
        return out, report

    def records(self, split, size, seed):
        """All records (size None) or a seeded sample of `size`, in file order; the whole file is one split
        unless `partition=hash`, which keeps the problems whose text hashes into `split`."""
        rows, report = self.read_all()
        if self.partition == "hash":
            split = canonical_split(split)
            before = len(rows)
            rows = [r for r in rows if split_of(r["prompt"]) == split]
            report["outside_split"] = before - len(rows)
        if size is not None and size < len(rows):
            keep = sorted(random.Random(seed).sample(range(len(rows)), size))
            report["not_sampled"] = len(rows) - size
            rows = [rows[i] for i in keep]
        elif size is not None and size > len(rows):
            report["short_by"] = size - len(rows)
        report["returned"] = len(rows)
        self.last_report = report
        return rows

    # --- verifying -------------------------------------------------------------------------------
    def score(self, answer_text, gold, metadata=None) -> float:
        gold_value, _ = split_gold(gold, metadata)
        if not isinstance(answer_text, str) or not answer_text.strip() or len(answer_text) > _MAX_ANSWER_CHARS:
            return 0.0
        gold_value = str(gold_value)
        if answer_text.strip() == gold_value.strip():
            return 1.0
        return float(math_equivalent(answer_text.strip(), gold_value))
