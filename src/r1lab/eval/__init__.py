"""Evaluation: unbiased pass@k, maj@k (cons@k), bootstrap intervals, and the R1-protocol eval runner."""

from r1lab.eval.metrics import (
    bootstrap_ci,
    default_ks,
    maj_at_k,
    majority_vote,
    pass_at_k,
)
from r1lab.eval.runner import (
    EvalSettings,
    evaluate,
    summarize,
    to_markdown,
    write_results,
)

__all__ = [
    "EvalSettings", "bootstrap_ci", "default_ks", "evaluate", "maj_at_k", "majority_vote", "pass_at_k",
    "summarize", "to_markdown", "write_results",
]
