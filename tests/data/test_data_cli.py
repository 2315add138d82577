"""`r1lab data build` / `r1lab data preview`: typed config, counts printed, atomic JSONL output."""

import json

from r1lab.cli import main
from r1lab.data import load_task


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def printed_counts(stdout):
    return {k: int(v) for k, v in (line.split() for line in stdout.splitlines() if not line.startswith("wrote"))}


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_build_records_with_decontamination_prints_counts(tmp_path, capsys):
    cfg = tmp_path / "build.yaml"
    cfg.write_text(
        'task: "arith?operands=3"\nsize: 120\nseed: 1\ntemplate: plain\n'
        "decontaminate:\n  n: 8\n  against:\n    - {task: \"arith?operands=3\", split: test, size: 50}\n"
    )
    out = tmp_path / "out.jsonl"
    code, stdout, _ = run(capsys, "data", "build", str(cfg), "-o", str(out))
    assert code == 0
    rows = read_jsonl(out)
    assert len(rows) == 120
    assert rows[0]["rendered_prompt"] == rows[0]["prompt"] + "\n<think>\n" and rows[0]["prefill"] == "<think>\n"
    assert [p["step"] for p in rows[0]["metadata"]["provenance"]] == ["dedup_exact", "decontaminate"]
    assert printed_counts(stdout) == {"loaded": 120, "exact_duplicates": 0, "contaminated": 0, "written": 120}
    assert f"wrote 120 record(s) to {out}" in stdout


def test_build_removes_a_leaked_eval_problem_from_a_file_task(tmp_path, capsys):
    evals = load_task("arith", "test", 30, 0)
    train = load_task("arith", "train", 40, 0)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": r["prompt"], "answer": r["answer"]}) + "\n"
                            for r in [*train, evals[3], train[0]]) + '{"prompt": "no answer here"}\n')
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in evals))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f'task: "file:{data}"\nsize: 1000\ndecontaminate:\n  against:\n    - path: "{eval_file}"\n')
    code, stdout, _ = run(capsys, "data", "build", str(cfg), "-o", str(tmp_path / "o.jsonl"))
    assert code == 0
    assert len(read_jsonl(tmp_path / "o.jsonl")) == 40
    counts = printed_counts(stdout)
    assert counts["exact_duplicates"] == 1 and counts["contaminated"] == 1 and counts["written"] == 40
    assert counts["file_rows"] == 43 and counts["file_skipped_no_answer"] == 1  # nothing dropped silently


def test_build_corpus_and_cold_start_with_overrides(tmp_path, capsys):
    cfg = tmp_path / "corpus.yaml"
    cfg.write_text('task: "arith?operands=4"\nkind: corpus\nsize: 100\nstyle_mix: {direct: 0.5, cot: 0.3, reflect: 0.2}\n')
    code, stdout, _ = run(capsys, "data", "build", str(cfg), "-o", str(tmp_path / "c.jsonl"), "size=40")
    assert code == 0
    docs = read_jsonl(tmp_path / "c.jsonl")
    assert len(docs) == 40 and sum(d["style"] == "direct" for d in docs) == 20
    assert "style_direct" in stdout
    code, _, _ = run(capsys, "data", "build", str(cfg), "-o", str(tmp_path / "s.jsonl"), "kind=cold_start",
                     "style_mix=null", "size=10")
    assert code == 0
    sft = read_jsonl(tmp_path / "s.jsonl")
    assert len(sft) == 10 and all(r["completion"].endswith("</answer>") for r in sft)


def test_config_errors_are_one_line_and_leave_no_file(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text('task: "arith"\nsizee: 3\n')
    out = tmp_path / "never.jsonl"
    code, _, err = run(capsys, "data", "build", str(cfg), "-o", str(out))
    assert code == 2 and err.startswith("error:") and "unknown key 'sizee'" in err and err.count("\n") == 1
    assert not out.exists()
    cfg.write_text('task: "arith?operands=99"\n')
    code, _, err = run(capsys, "data", "build", str(cfg), "-o", str(out))
    assert code == 2 and "operands" in err and not out.exists()


def test_preview_prints_records_and_worked_completions(capsys):
    code, stdout, _ = run(capsys, "data", "preview", "arith?operands=3", "--n", "2", "--style", "reflect",
                          "--split", "eval")
    assert code == 0
    assert stdout.count("── arith-") == 2 and "<answer>" in stdout and "check:" in stdout
    assert "2 record(s) of arith?operands=3 [eval, seed 0]" in stdout
    code, stdout, _ = run(capsys, "data", "preview", "rg:chain_sum", "--n", "1", "--json", "--template", "r1")
    assert code == 0
    row = json.loads(stdout)
    assert row["rendered_prompt"].startswith("A conversation between User and Assistant.")


def test_preview_rejects_a_style_for_tasks_without_traces(capsys):
    code, _, err = run(capsys, "data", "preview", "rg:chain_sum", "--style", "cot")
    assert code == 2 and "no worked solutions" in err
