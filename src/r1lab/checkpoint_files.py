"""Reading a Hugging Face-layout checkpoint directory: `config.json` and the safetensors weights (one file or
shards named by `model.safetensors.index.json`), with one-line errors naming the file. The model's loader and
the FP8 converter both read checkpoints through here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from r1lab.errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"


def read_config_json(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(path of config.json, its contents) of a checkpoint directory."""
    cfg_file = Path(path) / CONFIG_NAME
    if not cfg_file.is_file():
        raise CheckpointError(f"{cfg_file}: not found (expected a Hugging Face/r1lab checkpoint directory)")
    try:
        return cfg_file, json.loads(cfg_file.read_text())
    except ValueError as e:
        raise CheckpointError(f"{cfg_file}: invalid JSON ({e})") from None


def weight_files(path: Path) -> list[str]:
    """The safetensors files of a directory: those its index names, else every `*.safetensors`."""
    index = path / INDEX_NAME
    if index.is_file():
        try:
            return sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{index}: not a safetensors index ({e})") from None
    files = sorted(p.name for p in path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path}: no *.safetensors weights found")
    return files


def read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import (  # paid where used (CLI start-up)
        safe_open,  # imported with the first checkpoint read: start-up time of the CLI
    )

    if not file.is_file():
        raise CheckpointError(f"{file}: listed in {INDEX_NAME} but missing")
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise CheckpointError(f"{file}: unreadable safetensors file ({str(e).splitlines()[0]})") from None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the directory's weight files, by key."""
    tensors: dict[str, torch.Tensor] = {}
    for name in weight_files(path):
        tensors.update(read_safetensors(path / name))
    return tensors
