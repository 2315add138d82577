"""JSONL reading: objects with their line numbers, blank lines counted, every error naming file and line."""

import pytest

from r1lab.errors import DataError
from r1lab.jsonl import read_jsonl


def test_objects_line_numbers_and_blank_count(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"a": 1}\n\n{"b": 2}\n   \n')
    data = read_jsonl(p)
    assert data.records == [(1, {"a": 1}), (3, {"b": 2})]
    assert data.blank == 2 and data.objects() == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize("text,message", [
    ('{"a": 1}\n{oops\n', r"d\.jsonl:2: malformed JSON"),
    ('{"a": 1}\n\n[1, 2]\n', r"d\.jsonl:3: expected a JSON object, got list"),
])
def test_bad_lines_are_named(tmp_path, text, message):
    p = tmp_path / "d.jsonl"
    p.write_text(text)
    with pytest.raises(DataError, match=message):
        read_jsonl(p)


def test_missing_file_names_what_was_expected(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: SFT data file not found"):
        read_jsonl(tmp_path / "nope.jsonl", kind="SFT data file")
