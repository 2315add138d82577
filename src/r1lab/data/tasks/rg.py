"""Every reasoning-gym dataset as an r1lab task (`rg:<name>?<config>`), scored by reasoning-gym itself.

Records keep a locator (dataset seed, size and index) so the verifier regenerates the exact reasoning-gym
entry, metadata objects included, and calls that dataset's own `score_answer`; nothing is re-implemented.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from r1lab.data.records import (
    canonical_split,
    make_record,
    split_of,
    split_seed,
    text_hash,
)
from r1lab.data.tasks.base import Task, register_task, split_gold
from r1lab.errors import DataError

_MAX_ANSWER_CHARS = 100_000


def _registry() -> dict:
    from reasoning_gym.factory import DATASETS  # optional: only for rg: tasks

    return DATASETS


@lru_cache(maxsize=64)
def _dataset(name: str, config_json: str, seed: int, size: int):

    import reasoning_gym  # optional: only for rg: tasks

    config = json.loads(config_json)
    if name == "composite" and isinstance(config.get("datasets"), list):
        from reasoning_gym.composite import DatasetSpec  # optional: only for rg: tasks

        config["datasets"] = [
            DatasetSpec(**{"config": {}, "weight": 1.0, **d}) if isinstance(d, dict) else d for d in config["datasets"]
        ]
    try:
        return reasoning_gym.create_dataset(name, seed=seed, size=size, **config)
    except (TypeError, ValueError, AssertionError, AttributeError, KeyError) as e:
        raise DataError(f"reasoning-gym dataset {name!r}: invalid config {config}: {e}") from None


@register_task("rg")
class ReasoningGymTask(Task):
    """`rg:<dataset>` with that dataset's config options (e.g. `rg:basic_arithmetic?min_terms=2`)."""

    def __init__(self, target, options):
        super().__init__(target, options)
        if not target:
            raise DataError("task 'rg' needs a dataset name, e.g. 'rg:basic_arithmetic'")
        if target not in _registry():
            raise DataError(f"unknown reasoning-gym dataset {target!r}; see reasoning_gym.factory.DATASETS")
        for reserved in ("seed", "size"):
            if reserved in options:
                raise DataError(f"task {target!r}: '{reserved}' comes from load_task(), not the task name")

        self._config_json = json.dumps(options, sort_keys=True)

    def _dataset(self, seed: int, size: int):
        return _dataset(self.target, self._config_json, seed, size)

    def records(self, split, size, seed):
        split = canonical_split(split)
        ds_seed = split_seed(seed, split, salt=f"rg:{self.target}")
        limit = 200 + 40 * size
        ds = self._dataset(ds_seed, limit)
        seen: set[str] = set()
        out: list[dict] = []
        for index in range(limit):
            if len(out) == size:
                break
            entry = ds[index]
            question = str(entry["question"])
            if split_of(question) != split or text_hash(question) in seen:
                continue
            seen.add(text_hash(question))
            answer = entry.get("answer")
            meta = {
                "rg": {"dataset": self.target, "seed": ds_seed, "size": limit, "index": index},
                "source": entry.get("metadata", {}),
            }
            out.append(make_record(self.name, question, "" if answer is None else str(answer), meta))
        if len(out) < size:
            raise DataError(
                f"task {self.name!r}: found only {len(out)} distinct {split} problems of {size} requested "
                f"in {limit} reasoning-gym items; lower size or widen the dataset config"
            )
        return out

    def _entry(self, gold: Any, metadata: dict) -> tuple[dict, Any]:
        """(entry, dataset) to score with: the entry regenerated from the record's locator when it has one,
        else one rebuilt from the gold answer and the stored metadata."""
        loc = metadata.get("rg") if isinstance(metadata, dict) else None
        if isinstance(loc, dict) and {"seed", "size", "index"} <= set(loc):
            ds = self._dataset(int(loc["seed"]), int(loc["size"]))
            entry = ds[int(loc["index"])]
            if entry.get("answer") is None or str(entry.get("answer")) == str(gold):
                return entry, ds
        source = metadata.get("source", metadata) if isinstance(metadata, dict) else {}
        # score_answer depends on the dataset config, not on its seed or size
        return {"question": "", "answer": gold, "metadata": source}, self._dataset(0, 1)

    def score(self, answer_text, gold, metadata=None) -> float:
        gold_value, meta = split_gold(gold, metadata)
        if answer_text is not None and not isinstance(answer_text, str):
            answer_text = str(answer_text)
        if answer_text is not None and len(answer_text) > _MAX_ANSWER_CHARS:
            return 0.0
        entry, dataset = self._entry(gold_value, meta)
        return float(dataset.score_answer(answer_text, entry))
