"""Reading JSONL files: one JSON object per line, every error naming the file and the line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from r1lab.errors import DataError


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number from 1, parsed value) for every non-blank line; malformed JSON raises `DataError`."""
    with path.open("r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None


@dataclass
class JsonlRecords:
    records: list[tuple[int, dict]] = field(default_factory=list)  # (line number, object)
    blank: int = 0  # blank lines skipped

    def objects(self) -> list[dict]:
        return [r for _, r in self.records]


def read_jsonl(path: str | Path, *, kind: str = "file") -> JsonlRecords:
    """Every line of a JSONL file as a JSON object; a missing file, bad JSON or a non-object is one error line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {kind} not found")
    out = JsonlRecords()
    for lineno, value in iter_jsonl(path):
        if not isinstance(value, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(value).__name__}")
        out.records.append((lineno, value))
    with path.open("r", encoding="utf-8") as f:
        out.blank = sum(1 for line in f if not line.strip())
    return out
