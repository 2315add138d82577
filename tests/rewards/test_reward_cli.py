"""`r1lab reward score FILE.jsonl`: a table of scores; malformed lines name the file and line."""

from __future__ import annotations

import json

import pytest

from r1lab.cli import main


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_scores_every_line_with_its_columns(tmp_path, capsys):
    f = write_lines(tmp_path / "c.jsonl", [
        json.dumps({"completion": "<think>3+4</think>\n<answer>7</answer>", "answer": "7"}),
        "",
        json.dumps({"completion": [{"role": "assistant", "content": "r</think><answer>8</answer>"}], "answer": "7",
                    "prefill": "<think>\n"}),
        json.dumps({"completion": "no answer"}),
    ])
    assert main(["reward", "score", str(f), "--rewards", "accuracy,format", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [
        {"line": 1, "accuracy": 1.0, "format": 1.0},
        {"line": 3, "accuracy": 0.0, "format": 1.0},  # prefill column put back before the format check
        {"line": 4, "accuracy": None, "format": 0.0},  # no gold answer: accuracy not applicable
    ]


def test_table_shows_rows_means_and_skipped_blank_lines(tmp_path, capsys):
    f = write_lines(tmp_path / "c.jsonl", [json.dumps({"completion": "<answer>7</answer>", "answer": a}) for a in "77"] + [""])
    assert main(["reward", "score", str(f), "--rewards", "accuracy,format_soft"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "format_soft" in out and "mean" in out and "1.000" in out and "0.500" in out
    assert "skipped 1 blank line" in out


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"answer": "7"}', "no 'completion' field"),
    ],
)
def test_malformed_line_is_one_error_naming_file_and_line(tmp_path, capsys, bad_line, message):
    f = write_lines(tmp_path / "c.jsonl", [json.dumps({"completion": "x"}), bad_line])
    assert main(["reward", "score", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {f}:2: {message}")


def test_unknown_reward_and_missing_file(tmp_path, capsys):
    f = write_lines(tmp_path / "c.jsonl", [json.dumps({"completion": "x"})])
    assert main(["reward", "score", str(f), "--rewards", "accuracy,bogus"]) == 2
    assert "unknown reward 'bogus'" in capsys.readouterr().err
    assert main(["reward", "score", str(tmp_path / "missing.jsonl")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_list(capsys):
    assert main(["reward", "list"]) == 0
    names = capsys.readouterr().out.split()
    assert names == sorted(names)
    assert {"accuracy", "code", "format", "format_soft", "language_consistency", "length", "overlong"} <= set(names)
