"""Task records and the rules that keep them apart: canonical text, split partition, ids.

A record is a plain dict (`id`, `prompt`, `answer`, `task`, `metadata`) so it moves through JSONL, TRL and
`datasets` unchanged. Train and evaluation splits are disjoint *by construction*: a problem's split is a
pure function of its canonical text (a hash bucket), so the same problem can never land in two splits,
whatever task config, seed or size produced it.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from typing import Any

from r1lab.errors import DataError

# Share of the hash space owned by each split. "eval" and "test" are the same split (aliases).
SPLIT_BUCKETS: dict[str, tuple[int, int]] = {
    "train": (0, 800),
    "validation": (800, 900),
    "test": (900, 1000),
}
SPLIT_ALIASES = {"eval": "test", "val": "validation", "valid": "validation", "dev": "validation"}
_N_BUCKETS = 1000

_WS = re.compile(r"\s+")


def canonical_split(split: str) -> str:
    s = SPLIT_ALIASES.get(split, split)
    if s not in SPLIT_BUCKETS:
        known = ", ".join(sorted([*SPLIT_BUCKETS, *SPLIT_ALIASES]))
        raise DataError(f"unknown split {split!r}; expected one of: {known}")
    return s


def canonical_text(text: str) -> str:
    """Unicode-normalised, lower-cased, whitespace-collapsed text: what 'the same problem' means."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _WS.sub(" ", text).strip()


def text_hash(text: str) -> str:
    return hashlib.sha256(canonical_text(text).encode("utf-8")).hexdigest()


def split_of(text: str) -> str:
    """The one split a problem belongs to, from a hash of its canonical text."""
    bucket = int(text_hash(text)[:12], 16) % _N_BUCKETS
    for name, (lo, hi) in SPLIT_BUCKETS.items():
        if lo <= bucket < hi:
            return name
    raise AssertionError("bucket table does not cover the hash space")


def split_seed(seed: int, split: str, salt: str = "") -> int:
    """A generator seed that differs per split (and per task), so splits never replay the same stream."""
    digest = hashlib.sha256(f"{salt}|{canonical_split(split)}|{seed}".encode()).hexdigest()
    return int(digest[:8], 16)


def record_id(task: str, prompt: str) -> str:
    """Stable id from the task family and the problem text (same problem -> same id)."""
    family = task.split("?", 1)[0]
    return f"{family}-{text_hash(prompt)[:16]}"


def make_record(task: str, prompt: str, answer: str, metadata: dict[str, Any] | None = None, **extra) -> dict:
    rec = {"id": record_id(task, prompt), "prompt": prompt, "answer": answer, "task": task,
           "metadata": to_jsonable(metadata or {})}
    rec.update(extra)
    return rec


def to_jsonable(obj: Any) -> Any:
    """Metadata as JSON would give it back (tuples -> lists, sets -> sorted lists, other objects -> str),
    so a record in memory equals the record read from its JSONL file."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_jsonable(v) for v in obj), key=repr)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        try:
            return to_jsonable(obj.item())
        except Exception:
            pass
    return str(obj)
