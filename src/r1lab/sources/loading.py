"""`load_model(name_or_dir)`: one entry point for every model the trainers and the engine accept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from r1lab.data.tokenizer import load_tokenizer
from r1lab.errors import CheckpointError, R1labError
from r1lab.model import Transformer
from r1lab.sources.smollm2 import smollm2_dir

# Named sources: name -> function returning a local HF-layout directory.
SOURCES: dict[str, Callable[[], Path]] = {"smollm2-135m": smollm2_dir}

R1LAB_MODEL_TYPES = {"deepseek_v3"}


def list_sources() -> list[str]:
    return sorted(SOURCES)


def resolve_model_dir(name_or_dir: str | Path) -> Path:
    """A named source's cached directory, or the given directory after checking it has a config.json."""
    key = str(name_or_dir)
    if key in SOURCES:
        return SOURCES[key]()
    path = Path(name_or_dir).expanduser()
    if not path.is_dir():
        raise R1labError(f"model '{key}' is neither a directory nor a known source ({', '.join(list_sources())})")
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: no config.json (expected a Hugging Face-layout checkpoint directory)")
    return path


def model_type(directory: Path) -> str:
    try:
        return str(json.loads((directory / "config.json").read_text()).get("model_type", ""))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{directory / 'config.json'}:{e.lineno}: invalid JSON ({e.msg})")


def is_r1lab_dir(directory: Path) -> bool:
    """DeepSeek-V3-family checkpoints load into r1lab's own Transformer; everything else through transformers."""
    return model_type(directory) in R1LAB_MODEL_TYPES


def load_model(name_or_dir: str | Path, *, dtype: Any = None) -> tuple[Any, Any | None]:
    """(model in eval mode, tokenizer or None) for "smollm2-135m", an HF causal-LM dir or an r1lab dir."""
    directory = resolve_model_dir(name_or_dir)
    if is_r1lab_dir(directory):
        model = Transformer.from_pretrained(directory)
    else:
        from transformers import AutoModelForCausalLM  # slow import, paid where used

        kwargs = {"dtype": dtype} if dtype is not None else {}
        try:
            model = AutoModelForCausalLM.from_pretrained(directory, **kwargs)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{directory}: cannot load as a causal LM ({str(e).splitlines()[0]})")
    if dtype is not None:
        model.to(dtype)
    model.eval()
    return model, load_tokenizer(directory, required=False)  # None: token-id prompts still work
