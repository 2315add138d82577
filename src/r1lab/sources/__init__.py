"""Model sources: named pretrained models available offline, and loading of checkpoint directories."""

from r1lab.sources.cache import cache_root
from r1lab.sources.loading import (
    list_sources,
    load_model,
    resolve_model_dir,
)
from r1lab.sources.smollm2 import find_gguf, smollm2_dir

__all__ = ["cache_root", "find_gguf", "list_sources", "load_model", "resolve_model_dir", "smollm2_dir"]
