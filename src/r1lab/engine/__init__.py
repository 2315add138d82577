"""Rollout engine: batched sampling with KV caches behind one interface (`Sampler`, built by `make_sampler`)."""

from r1lab.engine.factory import make_sampler
from r1lab.engine.params import Completion, SamplingParams
from r1lab.engine.sampler import Sampler

__all__ = ["Completion", "SamplingParams", "Sampler", "make_sampler"]
