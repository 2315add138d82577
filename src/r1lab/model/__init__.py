"""The DeepSeek-V3 architecture: MLA, DeepSeekMoE with aux-loss-free balancing, MTP; HF checkpoint interop.

Public API (see each module's docstring for details):
- `ModelConfig` (`config.py`): `ModelConfig.from_preset("tiny"|"small"|"deepseek-v3", **overrides)`, `to_dict()`,
  `from_dict()`, `validate()`.
- `Transformer` (`transformer.py`): `model(input_ids, labels=None, *, positions=None, cache=None, key_mask=None,
  return_hidden=False) -> ModelOutput`; `new_cache(batch_size, max_len)`; `mtp_forward(hidden, next_ids, ...)`;
  `update_balance_bias(gamma)`; `routing_stats()`; `from_pretrained(dir)`; `save_pretrained(dir)`.
- `MLACache` (`cache.py`): `select(rows)`, `repeat_interleave(n)`, `bytes_per_token()`.
- `accounting.py`: analytic parameter / FLOP / KV-cache counts (no allocation) used by `r1lab model-info`.
- `linear.py`: `make_linear` / `expert_matmul`, the hook where FP8 plugs in.
"""

from r1lab.model.cache import MLACache
from r1lab.model.config import PRESETS, ModelConfig
from r1lab.model.transformer import (
    IGNORE_INDEX,
    ModelOutput,
    Transformer,
    is_r1lab_model,
)

__all__ = ["ModelConfig", "PRESETS", "Transformer", "ModelOutput", "MLACache", "IGNORE_INDEX", "is_r1lab_model"]
