"""Tasks: synthetic arithmetic, reasoning-gym datasets and local files behind one `Task` interface."""

from r1lab.data.tasks import files, humaneval, proof, rg, synthetic  # noqa: F401  (registers the task kinds)
from r1lab.data.tasks.base import (
    Task,
    get_task,
    list_task_kinds,
    load_task,
    parse_task_spec,
    register_task,
    score_answer,
    verify_answer,
)
from r1lab.data.tasks.synthetic import ArithTask, ColumnAddTask, SyntheticTask

__all__ = [
    "Task", "SyntheticTask", "ArithTask", "ColumnAddTask", "get_task", "list_task_kinds", "load_task",
    "parse_task_spec", "register_task", "score_answer", "verify_answer",
]
