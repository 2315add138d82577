"""Data for every stage: tasks and verifiers, prompt templates, worked traces, tokenizers, hygiene."""

from r1lab.data.records import canonical_text, split_of
from r1lab.data.tasks import (
    Task,
    get_task,
    list_task_kinds,
    load_task,
    parse_task_spec,
    register_task,
    score_answer,
    verify_answer,
)
from r1lab.data.templates import Template, format_completion, get_template
from r1lab.data.traces import build_corpus, cold_start_records

__all__ = [
    "Task", "Template", "build_corpus", "canonical_text", "cold_start_records", "format_completion",
    "get_task", "get_template", "list_task_kinds", "load_task", "parse_task_spec", "register_task",
    "score_answer", "split_of", "verify_answer",
]
