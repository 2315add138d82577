"""Atomic writes: a failure mid-write leaves the previous content untouched and no temporary litter."""

import pytest

from r1lab.atomic import atomic_directory, atomic_write_json, atomic_write_text


def test_atomic_text_replaces_whole_file(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_json_roundtrip(tmp_path):
    import json

    atomic_write_json(tmp_path / "d" / "x.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "d" / "x.json").read_text()) == {"a": [1, 2]}


def test_killed_directory_write_keeps_old(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_directory(target) as d:
        (d / "w").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as d:
            (d / "w").write_text("half")
            raise RuntimeError("killed")
    assert (target / "w").read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["ckpt"]


def test_directory_replace(tmp_path):
    target = tmp_path / "ckpt"
    for v in ("1", "2"):
        with atomic_directory(target) as d:
            (d / "w").write_text(v)
    assert (target / "w").read_text() == "2"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["ckpt"]
