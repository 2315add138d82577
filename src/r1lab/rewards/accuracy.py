"""`accuracy`: 1.0 when the extracted answer is equivalent to the gold answer, else 0.0 (R1's rule reward).

Columns: `answer` (gold), optional `task` (use that task's own verifier when r1lab.data knows it), `metadata`
(passed to the task verifier), `prefill`, `tests`. A row with `tests` and no gold answer (a code task such as
`humaneval`) is correct when every test passes (`binary_code`), so "correct" means one thing for every task;
a row with neither scores None.
Extraction: `r1lab.rewards.extract_answer`; grading: `r1lab.rewards.grade.grade_answer`.
"""

from __future__ import annotations

from r1lab.data.answer import DEFAULT_FALLBACKS, FALLBACKS, extract_answer
from r1lab.errors import ConfigError
from r1lab.rewards.code import make_binary_code
from r1lab.rewards.grade import DEFAULT_TIMEOUT_S, grade_answer
from r1lab.rewards.registry import column, record_timeout, register_reward, with_prefill


def make_accuracy(fallbacks: tuple[str, ...] | list[str] = DEFAULT_FALLBACKS, timeout_s: float = DEFAULT_TIMEOUT_S):
    unknown = [f for f in fallbacks if f not in FALLBACKS]
    if unknown:
        raise ConfigError(f"accuracy: unknown answer fallback(s) {unknown}; known: {', '.join(FALLBACKS)}")
    fallbacks = tuple(fallbacks)
    run_tests = make_binary_code()

    def accuracy(completions, answer=None, task=None, metadata=None, prefill=None, tests=None, **_) -> list[float | None]:
        n = len(completions)
        texts = with_prefill(completions, prefill)
        golds, tasks, metas = column(answer, n, "answer"), column(task, n, "task"), column(metadata, n, "metadata")
        test_cols = column(tests, n, "tests")
        scores: list[float | None] = [None] * n
        by_tests = [i for i in range(n) if golds[i] is None and test_cols[i] is not None]
        if by_tests:  # code rows: one call, so the sandbox runs them in parallel
            verdicts = run_tests([texts[i] for i in by_tests], tests=[test_cols[i] for i in by_tests])
            for i, verdict in zip(by_tests, verdicts):
                scores[i] = verdict
        for i, (text, gold, task_name, meta) in enumerate(zip(texts, golds, tasks, metas)):
            if gold is None:
                continue
            grade = grade_answer(extract_answer(text, fallbacks), gold, task=task_name, metadata=meta, timeout_s=timeout_s)
            if grade.timed_out:
                record_timeout("accuracy")
            scores[i] = 1.0 if grade.correct else 0.0
        return scores

    return accuracy


register_reward("accuracy", factory=make_accuracy)
