"""Nested training state (dicts, lists, numbers, strings, tensors) saved as JSON + safetensors, never pickled.

`save_state(dir, name, obj)` writes `<name>.json` (the structure, tensors replaced by references) and
`<name>.safetensors` (the tensors); `load_state` rebuilds the object. Tuples come back as lists. This is how
optimizer state, RNG states and a stage's data position travel in `trainer_state/`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from r1lab.errors import CheckpointError

_REF = "__tensor__"


def _flatten(obj: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().to("cpu").contiguous().clone()
        return {_REF: path}
    if isinstance(obj, np.ndarray):
        return _flatten(torch.from_numpy(np.ascontiguousarray(obj)), tensors, path)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"state key {k!r} at {path or '<root>'} must be str or int")
            # JSON keys are strings: remember int keys (optimizer state is keyed by parameter index)
            key = f"#int:{k}" if isinstance(k, int) else k
            out[key] = _flatten(v, tensors, f"{path}.{k}" if path else str(k))
        return out
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, tensors, f"{path}.{i}" if path else str(i)) for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot save {type(obj).__name__} at {path or '<root>'} in training state")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_REF}:
            return tensors[obj[_REF]]
        return {(int(k[5:]) if k.startswith("#int:") else k): _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(directory: str | Path, name: str, obj: Any) -> None:
    """Write `obj` as `<directory>/<name>.json` + `<name>.safetensors` (call inside an atomic directory)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(obj, tensors, "")
    (directory / f"{name}.json").write_text(json.dumps(structure, allow_nan=True) + "\n", encoding="utf-8")
    save_file(tensors, str(directory / f"{name}.safetensors"))


def load_state(directory: str | Path, name: str) -> Any:
    directory = Path(directory)
    jpath, tpath = directory / f"{name}.json", directory / f"{name}.safetensors"
    if not jpath.is_file() or not tpath.is_file():
        raise CheckpointError(f"{directory}: missing {name}.json or {name}.safetensors (incomplete trainer state)")
    return _unflatten(json.loads(jpath.read_text(encoding="utf-8")), load_file(str(tpath)))
