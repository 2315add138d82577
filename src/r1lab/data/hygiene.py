"""Data hygiene: exact and near-duplicate removal, n-gram decontamination, pass-rate difficulty filtering.

Each step returns a `HygieneResult` (kept records, removed records with reasons, counts) and appends a
provenance entry to `metadata["provenance"]` of every record it keeps, so a dataset says how it was made.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np
from pydantic import Field

from r1lab.config import StrictModel
from r1lab.data.records import canonical_text
from r1lab.data.tasks import load_task
from r1lab.errors import DataError
from r1lab.jsonl import read_jsonl

_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass
class HygieneResult:
    records: list[dict]
    removed: list[dict] = field(default_factory=list)  # {"id", "reason", ...}
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_removed(self) -> int:
        return len(self.removed)


def _text(record: dict, key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise DataError(f"record {record.get('id', '?')!r}: field {key!r} is missing or not text")
    return value


def _with_provenance(record: dict, entry: dict[str, Any]) -> dict:
    out = copy.copy(record)
    meta = dict(out.get("metadata") or {})
    meta["provenance"] = [*meta.get("provenance", []), entry]
    out["metadata"] = meta
    return out


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens: numbers stay whole, so `23+45` is three tokens."""
    return _WORD.findall(canonical_text(text))


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    """All n-grams; a text shorter than n contributes itself whole (short prompts are still checked)."""
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


# --- duplicates ---------------------------------------------------------------------------------------
def dedup_exact(records: list[dict], key: str = "prompt") -> HygieneResult:
    """Drop records whose canonical `key` text was seen before (first occurrence kept)."""
    first: dict[str, str] = {}
    kept, removed = [], []
    for r in records:
        h = hashlib.sha256(canonical_text(_text(r, key)).encode()).hexdigest()
        if h in first:
            removed.append({"id": r.get("id"), "reason": "exact_duplicate", "of": first[h]})
            continue
        first[h] = r.get("id")
        kept.append(_with_provenance(r, {"step": "dedup_exact", "key": key}))
    return HygieneResult(kept, removed, {"exact_duplicates": len(removed)})


_PRIME = (1 << 61) - 1


def _shingle_hashes(tokens: list[str], n: int) -> np.ndarray:
    grams = ngrams(tokens, n)
    return np.array(
        sorted(int.from_bytes(hashlib.blake2b(" ".join(g).encode(), digest_size=4).digest(), "little") for g in grams),
        dtype=np.uint64,
    )


def minhash_signature(hashes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash under h_i(x) = (a_i x + b_i) mod p with 32-bit x and 29-bit a (no uint64 overflow)."""
    if hashes.size == 0:
        return np.full(a.shape, np.iinfo(np.uint64).max, dtype=np.uint64)
    values = (a[:, None] * hashes[None, :] + b[:, None]) % np.uint64(_PRIME)  # [perms, shingles]
    return values.min(axis=1)


def jaccard(x: set, y: set) -> float:
    return len(x & y) / len(x | y) if (x or y) else 1.0


def dedup_near(
    records: list[dict],
    key: str = "prompt",
    *,
    threshold: float = 0.85,
    ngram: int = 5,
    num_perm: int = 64,
    bands: int = 16,
    seed: int = 0,
) -> HygieneResult:
    """Drop records whose word n-gram set has Jaccard >= `threshold` with an earlier kept record.

    MinHash + LSH banding proposes candidate pairs; each candidate is confirmed with the exact Jaccard,
    so nothing is removed on an estimate.
    """
    if num_perm % bands:
        raise DataError(f"dedup_near: num_perm ({num_perm}) must be a multiple of bands ({bands})")
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 29, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, 1 << 29, size=num_perm, dtype=np.uint64)
    rows = num_perm // bands
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
    kept_sets: list[set] = []
    kept_ids: list[Any] = []
    kept, removed = [], []
    for r in records:
        toks = words(_text(r, key))
        grams = ngrams(toks, ngram)
        sig = minhash_signature(_shingle_hashes(toks, ngram), a, b)
        keys = [sig[i * rows : (i + 1) * rows].tobytes() for i in range(bands)]
        candidates = {j for i, k in enumerate(keys) for j in buckets[i].get(k, ())}
        match = next((j for j in sorted(candidates) if jaccard(grams, kept_sets[j]) >= threshold), None)
        if match is not None:
            removed.append({"id": r.get("id"), "reason": "near_duplicate", "of": kept_ids[match],
                            "jaccard": round(jaccard(grams, kept_sets[match]), 4)})
            continue
        idx = len(kept_sets)
        kept_sets.append(grams)
        kept_ids.append(r.get("id"))
        for i, k in enumerate(keys):
            buckets[i].setdefault(k, []).append(idx)
        kept.append(_with_provenance(r, {"step": "dedup_near", "key": key, "threshold": threshold, "ngram": ngram}))
    return HygieneResult(kept, removed, {"near_duplicates": len(removed)})


# --- decontamination ----------------------------------------------------------------------------------
BOILERPLATE_SHARE = 0.1
BOILERPLATE_MIN_EVAL = 10


def _content_grams(toks: list[str], n: int, common: set[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """The text's n-grams less those made mostly of boilerplate words (words inside a `common` n-gram)."""
    if len(toks) < n or not common:
        return ngrams(toks, n)
    boiler = [False] * len(toks)
    for i in range(len(toks) - n + 1):
        if tuple(toks[i:i + n]) in common:
            boiler[i:i + n] = [True] * n
    return {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1) if 2 * sum(boiler[i:i + n]) < n}


def decontaminate(
    records: list[dict],
    eval_records: Iterable[dict | str],
    *,
    n: int = 8,
    key: str = "prompt",
    eval_key: str = "prompt",
    label: str = "eval",
    boilerplate_share: float = BOILERPLATE_SHARE,
) -> HygieneResult:
    """Drop training records sharing any word n-gram with an evaluation problem (open-r1 uses n = 8).

    Texts shorter than n count as one n-gram of their own length, both ways: a short eval problem is
    caught inside a long training text and vice versa, so short synthetic prompts are covered too.
    An n-gram found in at least `boilerplate_share` of the evaluation problems (of at least
    `BOILERPLATE_MIN_EVAL`) is the task's instruction or template, not a problem: its words are boilerplate, and an
    n-gram that is half boilerplate or more is not evidence of contamination. Without this rule a task whose every
    prompt carries the same instruction would lose its training set to n-grams like "... in [ ] . premises : 1 . a".
    """
    if n < 1:
        raise DataError(f"decontaminate: n must be >= 1, got {n}")
    texts = [words(e if isinstance(e, str) else _text(e, eval_key)) for e in eval_records]
    n_eval = len(texts)
    seen_in = Counter(g for toks in texts for g in ngrams(toks, n))  # gram -> evaluation problems containing it
    common = ({g for g, count in seen_in.items() if count >= boilerplate_share * n_eval}
              if n_eval >= BOILERPLATE_MIN_EVAL else set())
    index: dict[int, set[tuple[str, ...]]] = {}  # gram length -> eval grams (length n, or a whole short text)
    for toks in texts:
        for g in _content_grams(toks, n, common):
            index.setdefault(len(g), set()).add(g)
    inner: dict[int, set[tuple[str, ...]]] = {}  # k -> every k-gram inside an eval gram (for short texts)

    def inside_eval(k: int) -> set[tuple[str, ...]]:
        if k not in inner:
            inner[k] = {g[i : i + k] for grams in index.values() for g in grams for i in range(len(g) - k + 1)}
        return inner[k]

    kept, removed = [], []
    for r in records:
        toks = words(_text(r, key))
        hit = next((g for length, grams in index.items() if len(toks) >= length
                    for g in ngrams(toks, length) & grams), None)
        if hit is None and 0 < len(toks) < n and tuple(toks) in inside_eval(len(toks)):
            hit = tuple(toks)
        if hit is not None:
            removed.append({"id": r.get("id"), "reason": "contaminated", "ngram": " ".join(hit), "against": label})
            continue
        kept.append(_with_provenance(r, {"step": "decontaminate", "n": n, "against": label, "eval_size": n_eval}))
    return HygieneResult(kept, removed, {"contaminated": len(removed)})


# --- difficulty ---------------------------------------------------------------------------------------
def filter_by_pass_rate(
    records: list[dict],
    pass_rate: Callable[[dict], float] | Mapping[str, float],
    *,
    min_rate: float = 0.0,
    max_rate: float = 1.0,
    strict: bool = True,
) -> HygieneResult:
    """Keep problems the model sometimes, but not always, solves (open-r1's pass-rate filter).

    `pass_rate` is a callable `record -> rate in [0, 1]` (e.g. sample k completions and verify) or a
    mapping id -> rate measured earlier. With `strict`, a rate equal to a bound is dropped, so the defaults
    keep 0 < rate < 1. Records without a measured rate are dropped and counted.
    """
    if not 0.0 <= min_rate <= max_rate <= 1.0:
        raise DataError(f"filter_by_pass_rate: need 0 <= min_rate <= max_rate <= 1, got {min_rate}, {max_rate}")
    kept, removed = [], []
    counts = {"too_hard": 0, "too_easy": 0, "no_pass_rate": 0}
    for r in records:
        if callable(pass_rate):
            rate = float(pass_rate(r))
        else:
            rate = pass_rate.get(r.get("id"))
            if rate is None:
                counts["no_pass_rate"] += 1
                removed.append({"id": r.get("id"), "reason": "no_pass_rate"})
                continue
            rate = float(rate)
        low = rate <= min_rate if strict else rate < min_rate
        high = rate >= max_rate if strict else rate > max_rate
        if low or high:
            reason = "too_hard" if low else "too_easy"
            counts[reason] += 1
            removed.append({"id": r.get("id"), "reason": reason, "pass_rate": rate})
            continue
        kept.append(_with_provenance(r, {"step": "filter_by_pass_rate", "pass_rate": rate,
                                         "min_rate": min_rate, "max_rate": max_rate, "strict": strict}))
    return HygieneResult(kept, removed, counts)


class DedupConfig(StrictModel):
    """Which duplicates to drop, the same shape wherever records are deduplicated (data build, rejection sampling)."""

    exact: bool = Field(True, description="drop exact duplicates of the canonical text")
    near: bool = Field(False, description="drop near duplicates (MinHash + exact Jaccard on word n-grams)")
    threshold: float = Field(0.85, ge=0.0, le=1.0, description="Jaccard at or above which two texts are near duplicates")
    ngram: int = Field(5, ge=1, description="word n-gram size for near-duplicate shingles")


def deduplicate(records: list[dict], cfg: DedupConfig, key: str = "prompt") -> HygieneResult:
    """Exact, then near deduplication on `key`, as `cfg` asks; removals and counts of both steps together."""
    out = HygieneResult(records=list(records))
    for wanted, step in ((cfg.exact, lambda rs: dedup_exact(rs, key=key)),
                         (cfg.near, lambda rs: dedup_near(rs, key=key, threshold=cfg.threshold, ngram=cfg.ngram))):
        if wanted:
            res = step(out.records)
            out = HygieneResult(res.records, out.removed + res.removed, {**out.counts, **res.counts})
    return out


class EvalSetConfig(StrictModel):
    """Evaluation problems to keep out of training data: a task split, or a JSONL file with a `prompt` per line."""

    task: str | dict[str, Any] | None = Field(None, description="task whose split is held out (or use path)")
    split: str = Field("test", description="split of that task")
    size: int = Field(500, ge=1, description="how many evaluation problems")
    seed: int = Field(0, description="seed of the evaluation set")
    path: str | None = Field(None, description="JSONL of evaluation records with a 'prompt' field, instead of task")


def eval_records(spec: EvalSetConfig) -> list[dict]:
    """The evaluation set's records (each with a `prompt`); one-line DataError naming what is wrong."""
    if (spec.task is None) == (spec.path is None):
        raise DataError("decontaminate: give exactly one of 'task' or 'path' per evaluation set")
    if spec.task is not None:
        return load_task(spec.task, spec.split, spec.size, spec.seed)
    records = read_jsonl(spec.path).objects()
    for i, r in enumerate(records, 1):
        if not isinstance(r.get("prompt"), str):
            raise DataError(f"{spec.path}: record {i} has no 'prompt' text")
    return records

