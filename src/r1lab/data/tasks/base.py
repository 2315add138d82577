"""The `Task` abstraction, task names, and the registry behind `load_task` / `verify_answer`.

A task name is a string `kind[:target][?key=value&...]` (e.g. `arith?digits=3`,
`rg:basic_arithmetic?min_terms=2&max_terms=3`, `file:data/gsm8k.jsonl?format=gsm8k`) or a dict
`{"name": "rg:countdown", "num_numbers": 4}`. Every record carries the *canonical* name of the task that made
it, so `verify_answer(record["task"], ...)` rebuilds the same verifier anywhere (rewards, eval, rejection
sampling).
"""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from functools import lru_cache
from typing import Any, Callable, ClassVar
from urllib.parse import quote, unquote

import yaml

from r1lab.data.records import (
    canonical_split,
    make_record,
    split_of,
    split_seed,
    text_hash,
)
from r1lab.errors import DataError

TaskSpec = str | dict[str, Any]
_REGISTRY: dict[str, type["Task"]] = {}


def register_task(kind: str) -> Callable[[type["Task"]], type["Task"]]:
    def deco(cls: type[Task]) -> type[Task]:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return deco


class Task(ABC):
    """Makes records deterministically from (split, size, seed) and checks answers against gold."""

    kind: ClassVar[str] = ""
    has_traces: ClassVar[bool] = False  # can write worked solutions by program (see r1lab.data.traces)

    def __init__(self, target: str | None, options: dict[str, Any]):
        self.target = target
        self.options = dict(options)

    @property
    def name(self) -> str:
        return format_task_name(self.kind, self.target, self.options)

    @abstractmethod
    def records(self, split: str, size: int, seed: int) -> list[dict]:
        """`size` records of `split`; the same arguments always give the same records."""

    @abstractmethod
    def score(self, answer_text: str | None, gold: Any, metadata: dict | None = None) -> float:
        """Score in [0, 1] of an extracted answer against the gold answer (a string or a whole record)."""

    def verify(self, answer_text: str | None, gold: Any, metadata: dict | None = None) -> bool:
        try:
            return self.score(answer_text, gold, metadata) >= 1.0
        except Exception:  # a verifier never raises on model output
            return False


def _parse_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        return raw


def _format_value(v: Any) -> str:
    if isinstance(v, str):
        parsed = _parse_value(v)
        text = v if parsed == v else json.dumps(v)
    elif isinstance(v, bool):
        text = "true" if v else "false"
    elif isinstance(v, float):
        text = repr(v)
        if "e" in text and "." not in text:  # YAML 1.1 reads '1e-05' as a string, '1.0e-05' as a float
            text = text.replace("e", ".0e", 1)
    elif isinstance(v, int) or v is None:
        text = json.dumps(v)
    else:
        text = json.dumps(v, sort_keys=True, separators=(",", ":"))
    return quote(text, safe="-_.,:/[]{}\"'+")


def format_task_name(kind: str, target: str | None, options: dict[str, Any]) -> str:
    head = kind if target is None else f"{kind}:{target}"
    if not options:
        return head
    return head + "?" + "&".join(f"{k}={_format_value(v)}" for k, v in sorted(options.items()))


def parse_task_spec(spec: TaskSpec) -> tuple[str, str | None, dict[str, Any]]:
    """`"rg:countdown?num_numbers=4"` or `{"name": "rg:countdown", "num_numbers": 4}` -> (kind, target, options)."""
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("name", None)
        if not isinstance(name, str):
            raise DataError(f"task dict needs a 'name' string, got keys {sorted(spec)}")
        nested = spec.pop("config", None) or {}
        kind, target, options = parse_task_spec(name)
        return kind, target, {**options, **nested, **spec}
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"task name must be a non-empty string or dict, got {spec!r}")
    head, _, query = spec.strip().partition("?")
    kind, sep, target = head.partition(":")
    options = {}
    for part in filter(None, query.split("&")):  # not parse_qsl: '+' is an operator here, not a space
        key, eq, raw = part.partition("=")
        if not eq or not key:
            raise DataError(f"task {spec!r}: option {part!r} is not key=value")
        options[unquote(key)] = _parse_value(unquote(raw))
    return kind, (target if sep else None), options


@lru_cache(maxsize=256)
def _get_task_cached(name: str) -> Task:
    kind, target, options = parse_task_spec(name)
    if kind not in _REGISTRY:
        raise DataError(f"unknown task kind {kind!r} in {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind](target, options)


def get_task(spec: TaskSpec) -> Task:
    kind, target, options = parse_task_spec(spec)
    return _get_task_cached(format_task_name(kind, target, options))


def list_task_kinds() -> list[str]:
    return sorted(_REGISTRY)


def load_task(name: TaskSpec, split: str = "train", size: int = 100, seed: int = 0) -> list[dict]:
    """Records `{id, prompt, answer, task, metadata}` of a task split, deterministic in (name, split, size, seed)."""
    if size is not None and size < 0:
        raise DataError(f"size must be >= 0, got {size}")
    return get_task(name).records(split, size, seed)


def verify_answer(task_name: TaskSpec, answer_text: str | None, gold: Any, metadata: dict | None = None) -> bool:
    """True when the extracted answer is correct under the task's own verifier.

    `gold` is the record's `answer` string, or the whole record (then its `metadata` is used too).
    """
    return get_task(task_name).verify(answer_text, gold, metadata)


def score_answer(task_name: TaskSpec, answer_text: str | None, gold: Any, metadata: dict | None = None) -> float:
    """The task verifier's score in [0, 1] (partial credit where the task gives it); 0.0 on any failure."""
    try:
        return float(get_task(task_name).score(answer_text, gold, metadata))
    except Exception:
        return 0.0


def split_gold(gold: Any, metadata: dict | None) -> tuple[Any, dict]:
    """Accept a gold answer string or a whole record; return (answer, metadata)."""
    if isinstance(gold, dict) and "answer" in gold:
        return gold["answer"], metadata if metadata is not None else gold.get("metadata") or {}
    return gold, metadata or {}


def collect_problems(
    task_name: str,
    split: str,
    size: int,
    seed: int,
    draw: Callable[[random.Random, int], tuple[str, str, dict] | None],
    max_draws: int | None = None,
) -> list[dict]:
    """Draw problems from a seeded generator, keeping only distinct ones that hash into `split`.

    `draw(rng, i)` returns (prompt, answer, metadata) or None to skip. The generator's seed depends on the
    split, and membership depends only on the problem text, so splits are disjoint by construction.
    """
    split = canonical_split(split)
    family = task_name.split("?", 1)[0]
    rng = random.Random(split_seed(seed, split, salt=family))
    limit = max_draws if max_draws is not None else 200 + 40 * size
    seen: set[str] = set()
    out: list[dict] = []
    draws = 0
    while len(out) < size:
        if draws >= limit:
            raise DataError(
                f"task {task_name!r}: found only {len(out)} distinct {split} problems of {size} requested "
                f"after {draws} draws; the problem space is too small (lower size or raise difficulty)"
            )
        item = draw(rng, draws)
        draws += 1
        if item is None:
            continue
        prompt, answer, meta = item
        if split_of(prompt) != split:
            continue
        h = text_hash(prompt)
        if h in seen:
            continue
        seen.add(h)
        out.append(make_record(task_name, prompt, answer, meta))
    return out
