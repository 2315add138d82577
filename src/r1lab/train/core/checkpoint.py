"""The one place that writes and reads training checkpoints.

Layout of `<out_dir>/checkpoint/` (replaced atomically as a whole, so a kill leaves the previous one):
    config.json, model.safetensors ...   the model's own `save_pretrained` (HF layout), or safetensors
    <extra>.safetensors                  extra trained modules (e.g. a PPO critic), by name
    tokenizer files ...                  whatever the stage's `save_artifacts(dir)` adds
    trainer_state/state.json             step, last metrics, the loop config
    trainer_state/optimizer.*            AdamW state (JSON structure + safetensors tensors)
    trainer_state/rng.*                  Python / NumPy / torch (/ CUDA) generator states
    trainer_state/stage.*                the stage's own state (data position, its generators)
Nothing is pickled: tensors go through safetensors, everything else through JSON.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from r1lab.atomic import atomic_directory
from r1lab.errors import CheckpointError
from r1lab.train.core.lora import has_lora, load_lora, save_lora
from r1lab.train.core.rng import rng_state, set_rng_state
from r1lab.train.core.state_io import load_state, save_state

CHECKPOINT = "checkpoint"
TRAINER_STATE = "trainer_state"


def save_weights(model: nn.Module, directory: Path) -> None:
    """HF layout through the model's own `save_pretrained` (r1lab and HF models), else one safetensors file.
    A LoRA policy saves its merged weights as a plain HF model plus its adapter (r1lab.train.core.lora)."""

    if has_lora(model):
        with _quiet_hf_progress():
            save_lora(model, directory)
    elif hasattr(model, "save_pretrained"):
        with _quiet_hf_progress():
            model.save_pretrained(str(directory))
    else:
        save_model(model, str(directory / "model.safetensors"))


@contextlib.contextmanager
def _quiet_hf_progress():
    """HF prints a 'Writing model shards' bar per save; the loop's own bar is enough."""
    try:
        from transformers.utils import logging as hf_logging  # slow import, paid where used
    except ImportError:  # pragma: no cover
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_weights(model: nn.Module, directory: Path) -> None:
    """Load a checkpoint's weights into `model` in place (keeps the optimizer's parameter objects)."""

    if has_lora(model):  # only the adapter changed during training; the base came from init_from again
        load_lora(model, directory)
    elif hasattr(type(model), "from_pretrained") and hasattr(model, "save_pretrained"):
        with _quiet_hf_progress():
            loaded = type(model).from_pretrained(str(directory))
        missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
        del loaded
        if unexpected or any(not _is_buffer_only(model, k) for k in missing):
            raise CheckpointError(f"{directory}: weights do not match the model "
                                  f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    else:
        _load_safetensors(model, directory / "model.safetensors")


def _load_safetensors(module: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (incomplete checkpoint)")
    try:
        load_model(module, str(path))
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise CheckpointError(f"{path}: does not match the model being trained: {detail[:300]}") from None


def _is_buffer_only(model: nn.Module, key: str) -> bool:
    return key not in dict(model.named_parameters())


def save_checkpoint(out_dir: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    train_config: dict[str, Any], metrics: dict[str, float] | None = None,
                    extra_modules: dict[str, nn.Module] | None = None, stage_state: Any = None,
                    save_artifacts: Callable[[Path], None] | None = None) -> Path:
    """Atomically (re)write `<out_dir>/checkpoint/`; returns its path."""
    final = Path(out_dir) / CHECKPOINT
    with atomic_directory(final) as tmp:
        save_weights(model, tmp)  # first: a model's own atomic save may replace the directory
        for name, module in (extra_modules or {}).items():
            save_model(module, str(tmp / f"{name}.safetensors"))
        if save_artifacts is not None:
            save_artifacts(tmp)
        ts = tmp / TRAINER_STATE
        ts.mkdir()
        save_state(ts, "optimizer", optimizer.state_dict())
        save_state(ts, "rng", rng_state())
        if stage_state is not None:
            save_state(ts, "stage", stage_state)
        state = {"format": 1, "step": step, "metrics": metrics or {}, "train_config": train_config}
        (ts / "state.json").write_text(json.dumps(state, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    return final


def checkpoint_step(out_dir: str | Path) -> int | None:
    """Step of the checkpoint in `out_dir`, or None when there is none."""
    path = Path(out_dir) / CHECKPOINT / TRAINER_STATE / "state.json"
    if not path.is_file():
        return None
    return int(json.loads(path.read_text(encoding="utf-8"))["step"])


def load_checkpoint(out_dir: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    extra_modules: dict[str, nn.Module] | None = None) -> dict[str, Any]:
    """Restore weights, optimizer and RNG states; returns {"step", "metrics", "stage_state"}."""
    ckpt = Path(out_dir) / CHECKPOINT
    ts = ckpt / TRAINER_STATE
    if not (ts / "state.json").is_file():
        raise CheckpointError(f"{ckpt}: no trainer_state/state.json to resume from")
    state = json.loads((ts / "state.json").read_text(encoding="utf-8"))
    load_weights(model, ckpt)
    for name, module in (extra_modules or {}).items():
        _load_safetensors(module, ckpt / f"{name}.safetensors")
    opt_state = load_state(ts, "optimizer")
    try:
        optimizer.load_state_dict(opt_state)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{ts}: optimizer state does not match the model's parameters: {e}") from None
    set_rng_state(load_state(ts, "rng"))
    stage_state = load_state(ts, "stage") if (ts / "stage.json").is_file() else None
    return {"step": int(state["step"]), "metrics": state.get("metrics", {}), "stage_state": stage_state}
