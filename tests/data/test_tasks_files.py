"""Local JSONL / Parquet datasets: GSM8K, MATH and TRL forms, column mapping, errors naming file and line."""

import json

import pytest

from r1lab.data import get_task, load_task, verify_answer
from r1lab.data.tasks.files import last_boxed
from r1lab.errors import DataError


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GSM = [
    {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "A shop sells 1,200 pens a day. How many in 2 days?", "answer": "1200*2=2400\n#### 2,400"},
]
MATH = [
    {"problem": "Compute $\\frac{1}{2}+\\frac{1}{4}$.", "solution": "It is $\\boxed{\\frac{3}{4}}$."},
    {"problem": "Simplify $\\sqrt{8}$.", "solution": "We get $\\boxed{2\\sqrt{2}}$."},
]


def test_gsm8k_form_takes_the_number_after_the_hashes(tmp_path):
    f = write_jsonl(tmp_path / "gsm.jsonl", GSM)
    recs = load_task(f"file:{f}", "test", None, 0)
    assert [r["answer"] for r in recs] == ["7", "2400"]
    assert recs[0]["prompt"] == GSM[0]["question"]
    assert recs[0]["metadata"]["source"] == {"file": str(f), "line": 1, "format": "gsm8k"}
    assert verify_answer(recs[1]["task"], "2,400", recs[1])
    assert verify_answer(recs[1]["task"], "2400.0", recs[1])
    assert not verify_answer(recs[1]["task"], "2401", recs[1])


def test_math_form_takes_the_last_boxed_and_verifies_by_equivalence(tmp_path):
    f = write_jsonl(tmp_path / "math.jsonl", MATH)
    recs = load_task(f"file:{f}?format=math", "test", None, 0)
    assert [r["answer"] for r in recs] == ["\\frac{3}{4}", "2\\sqrt{2}"]
    assert verify_answer(recs[0]["task"], "0.75", recs[0])
    assert verify_answer(recs[0]["task"], "3/4", recs[0])
    assert not verify_answer(recs[0]["task"], "1/2", recs[0])
    assert verify_answer(recs[1]["task"], "\\sqrt{8}", recs[1])


def test_trl_conversational_form(tmp_path):
    rows = [{"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}],
             "completion": [{"role": "assistant", "content": "<think>\n2+2=4\n</think>\n<answer>\n4\n</answer>"}]}]
    f = write_jsonl(tmp_path / "trl.jsonl", rows)
    (r,) = load_task(f"file:{f}", "train", None, 0)
    assert r["prompt"] == "2+2?" and r["answer"] == "4"
    assert r["metadata"]["messages"] == rows[0]["prompt"]


def test_column_mapping(tmp_path):
    f = write_jsonl(tmp_path / "custom.jsonl", [{"q": "What is 6*7?", "gold": "42", "uid": "a1"}])
    (r,) = load_task(f"file:{f}?format=plain&prompt=q&answer=gold&id=uid", "train", None, 0)
    assert (r["id"], r["prompt"], r["answer"]) == ("a1", "What is 6*7?", "42")


def test_parquet_reads_like_jsonl(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "gsm.parquet"
    pq.write_table(pa.Table.from_pylist(GSM), path)
    from_parquet = load_task(f"file:{path}", "test", None, 0)
    from_jsonl = load_task(f"file:{write_jsonl(tmp_path / 'gsm.jsonl', GSM)}", "test", None, 0)
    assert [(r["prompt"], r["answer"]) for r in from_parquet] == [(r["prompt"], r["answer"]) for r in from_jsonl]


def test_a_malformed_line_names_the_file_and_line(tmp_path):
    f = write_jsonl(tmp_path / "bad.jsonl", [GSM[0], GSM[1], '{"question": "broken", "answer": '])
    with pytest.raises(DataError, match=r"bad\.jsonl:3: malformed JSON"):
        load_task(f"file:{f}", "train", None, 0)
    g = write_jsonl(tmp_path / "notobj.jsonl", [GSM[0], "[1, 2]"])
    with pytest.raises(DataError, match=r"notobj\.jsonl:2: expected a JSON object"):
        load_task(f"file:{g}", "train", None, 0)
    h = write_jsonl(tmp_path / "noprompt.jsonl", [GSM[0], {"answer": "#### 3"}])
    with pytest.raises(DataError, match=r"noprompt\.jsonl:2: missing or non-text prompt column 'question'"):
        load_task(f"file:{h}", "train", None, 0)


def test_records_without_a_gold_answer_are_skipped_and_counted(tmp_path):
    rows = [GSM[0], {"question": "no final answer", "answer": "just prose"}, GSM[1]]
    f = write_jsonl(tmp_path / "partial.jsonl", rows)
    name = f"file:{f}?format=gsm8k"
    recs = load_task(name, "train", None, 0)
    assert len(recs) == 2
    assert get_task(name).last_report["skipped_no_answer"] == 1
    assert get_task(name).last_report["rows"] == 3
    with pytest.raises(DataError, match=r"partial\.jsonl:2: no gold answer"):
        load_task(name + "&strict=true", "train", None, 0)


def test_size_samples_deterministically_in_file_order(tmp_path):
    rows = [{"prompt": f"problem {i}", "answer": str(i)} for i in range(50)]
    f = write_jsonl(tmp_path / "many.jsonl", rows)
    a = load_task(f"file:{f}", "train", 10, 3)
    assert a == load_task(f"file:{f}", "train", 10, 3)
    assert [int(r["answer"]) for r in a] == sorted(int(r["answer"]) for r in a)
    assert len(load_task(f"file:{f}", "train", None, 3)) == 50


def test_hash_partition_makes_file_splits_disjoint(tmp_path):
    rows = [{"prompt": f"problem number {i}", "answer": str(i)} for i in range(300)]
    f = write_jsonl(tmp_path / "pool.jsonl", rows)
    train = load_task(f"file:{f}?partition=hash", "train", None, 0)
    test = load_task(f"file:{f}?partition=hash", "test", None, 0)
    assert {r["prompt"] for r in train}.isdisjoint(r["prompt"] for r in test)
    assert 200 < len(train) < 280 and 10 < len(test) < 60


def test_missing_file_and_unknown_options(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_task(f"file:{tmp_path}/nope.jsonl", "train", None, 0)
    with pytest.raises(DataError, match="unknown option"):
        load_task(f"file:{tmp_path}/x.jsonl?colour=red", "train", None, 0)


@pytest.mark.parametrize("text,boxed", [("\\boxed{1}", "1"), ("a \\boxed{\\frac{1}{2}} b \\boxed{3}", "3"),
                                        ("\\boxed{x^{2}}", "x^{2}"), ("no box", None), ("\\boxed{open", None)])
def test_last_boxed(text, boxed):
    assert last_boxed(text) == boxed
