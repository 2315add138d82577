"""Rollout engine: batched sampling with KV caches behind one interface (see INTERFACES.md)."""

from r1lab.engine.params import Completion, SamplingParams
from r1lab.engine.sampler import Sampler, make_sampler

__all__ = ["Completion", "SamplingParams", "Sampler", "make_sampler"]
