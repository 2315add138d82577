"""Rule-based rewards with the TRL / open-r1 signature ``fn(completions, **columns) -> list[float | None]``.

Registered: accuracy, format, format_soft, language_consistency, overlong, length, cosine, kimi_length,
reasoning_steps, repetition_penalty, code, binary_code, code_format, proof, proof_steps, proof_verified_lines.
`extract_answer` and `grade_answer` are THE extractor and grader, shared with rejection sampling and eval.
"""

from r1lab.data.answer import DEFAULT_FALLBACKS, canonical_answer, extract_answer
from r1lab.rewards import accuracy as _accuracy  # noqa: F401  (registers)
from r1lab.rewards import code as _code  # noqa: F401
from r1lab.rewards import format as _format  # noqa: F401
from r1lab.rewards import language as _language  # noqa: F401
from r1lab.rewards import length as _length  # noqa: F401
from r1lab.rewards import proof as _proof  # noqa: F401
from r1lab.rewards import style as _style  # noqa: F401
from r1lab.rewards.combine import CombinedReward, RewardBreakdown, combine_rewards
from r1lab.rewards.grade import Grade, grade_answer
from r1lab.rewards.registry import (
    completion_text,
    get_reward,
    list_rewards,
    record_timeout,
    register_reward,
    reset_timeout_counts,
    timeout_counts,
)
from r1lab.rewards.sandbox import SandboxLimits, SandboxResult, run_python
from r1lab.rewards.spec import RewardSpec, build_reward

__all__ = [
    "CombinedReward", "DEFAULT_FALLBACKS", "Grade", "RewardBreakdown", "RewardSpec", "SandboxLimits", "SandboxResult",
    "build_reward", "canonical_answer", "combine_rewards", "completion_text", "extract_answer", "get_reward", "grade_answer",
    "list_rewards", "record_timeout", "register_reward", "reset_timeout_counts", "run_python", "timeout_counts",
]
