"""Data for every stage: tasks and verifiers, prompt templates, worked traces, tokenizers, hygiene."""

from r1lab.data.hygiene import (
    HygieneResult,
    decontaminate,
    dedup_exact,
    dedup_near,
    filter_by_pass_rate,
)
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
from r1lab.data.tokenizer import (
    SPECIAL_TOKENS,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
from r1lab.data.traces import (
    build_corpus,
    cold_start_from_records,
    cold_start_records,
    corpus_from_records,
)

__all__ = [
    "HygieneResult", "SPECIAL_TOKENS", "Task", "Template", "build_corpus", "canonical_text",
    "cold_start_from_records", "cold_start_records", "corpus_from_records", "decontaminate", "dedup_exact",
    "dedup_near", "filter_by_pass_rate", "format_completion", "get_task", "get_template", "list_task_kinds",
    "load_task", "load_tokenizer", "parse_task_spec", "register_task", "save_tokenizer", "score_answer",
    "split_of", "train_tokenizer", "verify_answer",
]
