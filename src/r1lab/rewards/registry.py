"""Reward registry and the conventions every reward follows.

A reward is ``fn(completions, **columns) -> list[float | None]`` — the signature TRL's GRPOTrainer and
open-r1 use — so functions move both ways: ours plug into TRL, theirs into r1lab. ``completions`` are
strings or conversational message lists (``[{"role": "assistant", "content": ...}]``); ``columns`` are
dataset fields, one value per completion (``answer``, ``tests``, ``prefill``, ``task``, ``lang``, ...), and
unknown columns are ignored. ``None`` means "not applicable to this sample" (e.g. no gold answer).

The registry stores *factories*: ``get_reward(name, **params)`` builds a reward with its settings
(``get_reward("overlong", max_len=512, cache_len=128)``); a plain function registered with
`register_reward` is its own zero-parameter factory. A name of the form ``"package.module:function"`` imports a
reward written elsewhere (TRL's ``trl.rewards:think_format_reward``, an open-r1 or a user's own function): with
no params it is the reward itself, with params it is a factory called with them (open-r1's ``get_*_reward``).
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections import Counter
from typing import Any, Callable, Sequence

from r1lab.errors import ConfigError

RewardFn = Callable[..., list]
_FACTORIES: dict[str, Callable[..., RewardFn]] = {}

# -- time-out accounting ----------------------------------------------------------------------------------
_timeouts: Counter[str] = Counter()
_timeouts_lock = threading.Lock()


def record_timeout(reward_name: str, count: int = 1) -> None:
    with _timeouts_lock:
        _timeouts[reward_name] += count


def timeout_counts() -> dict[str, int]:
    """How many reward evaluations timed out (each scored 0), per reward name, since start or last reset."""
    with _timeouts_lock:
        return dict(_timeouts)


def reset_timeout_counts() -> None:
    with _timeouts_lock:
        _timeouts.clear()


# -- registry ----------------------------------------------------------------------------------------------
def register_reward(name: str, fn: RewardFn | None = None, *, factory: Callable[..., RewardFn] | None = None):
    """Register a reward function (``register_reward("x", fn)`` or as ``@register_reward("x")``) or a factory
    (``register_reward("x", factory=make_x)``) whose keyword arguments become `get_reward` parameters."""
    if factory is not None:
        _FACTORIES[name] = factory
        return factory

    def deco(f: RewardFn) -> RewardFn:
        _FACTORIES[name] = lambda: f
        return f

    return deco(fn) if fn is not None else deco


def list_rewards() -> list[str]:
    return sorted(_FACTORIES)


def imported_factory(name: str, with_params: bool) -> Callable[..., RewardFn]:
    """The factory for a ``"package.module:function"`` reward name (see the module docstring)."""
    module_name, _, attr = name.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"reward {name!r}: cannot import it ({type(e).__name__}: {e})") from None
    if not callable(obj):
        raise ConfigError(f"reward {name!r}: {type(obj).__name__} is not callable")
    if with_params:
        return obj

    def imported(completions, **columns):  # a wrapper, so naming it below leaves the imported function as it was
        return obj(completions, **columns)

    return lambda: imported


def get_reward(name: str, **params: Any) -> RewardFn:
    """The reward registered as `name` (or imported, ``"module:function"``), built with `params`; its
    ``__name__`` is `name` (TRL logs by it)."""
    if name in _FACTORIES:
        factory = _FACTORIES[name]
    elif ":" in name:
        factory = imported_factory(name, with_params=bool(params))
    else:
        raise ConfigError(f"unknown reward {name!r}; known: {', '.join(list_rewards())}, or 'module:function'")
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"reward {name!r} has no parameter(s) {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}")
    fn = factory(**params)
    try:
        fn.__name__ = name
    except (AttributeError, TypeError):
        pass
    return fn


# -- helpers every reward uses -----------------------------------------------------------------------------
def completion_text(completion: Any) -> str:
    """A completion as text: strings as they are; message lists joined over their `content` (text parts of
    multimodal content included); anything else as empty text."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        parts: list[str] = []
        for message in completion:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        return "".join(parts)
    return ""


def column(values: Any, n: int, name: str) -> list:
    """A per-completion column: a list/tuple of length n as is, None as n Nones, a scalar broadcast to n."""
    if values is None:
        return [None] * n
    if isinstance(values, (list, tuple)):
        if len(values) != n:
            raise ValueError(f"reward column {name!r} has {len(values)} values for {n} completions")
        return list(values)
    return [values] * n


def with_prefill(completions: Sequence[Any], prefill: Any) -> list[str]:
    """Completion texts with the template's prefill (text the prompt already ended with) put back in front."""
    prefills = column(prefill, len(completions), "prefill")
    return [(p if isinstance(p, str) else "") + completion_text(c) for c, p in zip(completions, prefills)]
