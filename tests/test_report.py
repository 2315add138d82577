"""The report is built only from the run's files: every number in it comes from metrics or eval results."""

import json

from r1lab.report import write_report


def make_run(tmp_path):
    rl = tmp_path / "r1_rl"
    rl.mkdir()
    rows = [{"step": s, "reward": 0.1 * s, "rewards/accuracy/mean": 0.05 * s, "completions/mean_length": 10 + s,
             "completions/reflection_rate": 0.01 * s, "kl": 0.001 * s, "entropy": 1 - 0.01 * s} for s in range(5)]
    (rl / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{torn")
    base = tmp_path / "base"
    base.mkdir()
    (base / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0, "moe/load/layer1": [3, 1, 2, 2]}) + "\n")
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "results.json").write_text(json.dumps({
        "settings": {"n": 8, "temperature": 0.6, "top_p": 0.95},
        "checkpoints": [{"name": "base", "pass@1": 0.25, "pass@1_ci": [0.2, 0.3], "maj@k": 0.4, "k": 8},
                        {"name": "r1", "pass@1": 0.875, "pass@1_ci": [0.8, 0.9], "maj@k": 0.95, "k": 8}]}))
    (ev / "examples.json").write_text(json.dumps({"r1": [{"prompt": "1+1=", "completion": "<answer>2</answer>",
                                                          "correct": True}]}))
    return tmp_path


def test_report_tables_plots_and_html(tmp_path):
    run = make_run(tmp_path)
    md, page = write_report(run)
    text = md.read_text()
    assert "| r1 | 87.5 | [80.0, 90.0] | 95.0 |" in text
    assert "| base | 25.0 | [20.0, 30.0] | 40.0 |" in text
    assert "temperature=0.6" in text
    for name in ("reward_accuracy", "completion_length", "reflection_rate", "kl_entropy", "expert_load"):
        png = run / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plots/{name}.png" in text
    h = page.read_text()
    assert h.count("data:image/png;base64,") == 5
    assert "&lt;answer&gt;2&lt;/answer&gt;" in h


def test_empty_run_says_so(tmp_path):
    md, _ = write_report(tmp_path)
    text = md.read_text()
    assert "No evaluation results" in text and "No RL metrics" in text


def test_groups_extra_tasks_and_proofs_checked_line_by_line(tmp_path):
    import pytest

    pytest.importorskip("z3")
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "results.json").write_text(json.dumps({
        "settings": {"n": 4, "group_by": "depth"},
        "checkpoints": [{"name": "base", "pass@1": 0.1, "groups": {"1": 0.2, "3": 0.0, "10": 0.05},
                         "extra": {"proof?depth=4": 0.0}},
                        {"name": "r1", "pass@1": 0.5, "groups": {"1": 0.9, "3": 0.3, "10": 0.25},
                         "extra": {"proof?depth=4": 0.125}}]}))
    meta = {"premises": ["a == 4", "b == a + 3"], "goal": "b == 7"}
    completion = "<think>\n</think>\n<answer>\n3. a == 5 [1]\n4. b == 7 [1, 2]\n</answer>"
    (ev / "examples.json").write_text(json.dumps({"r1": [{"prompt": "p", "completion": completion, "correct": False,
                                                          "metadata": meta}]}))
    md, page = write_report(tmp_path)
    text = md.read_text()
    assert "| checkpoint | depth 1 (%) | depth 3 (%) | depth 10 (%) | proof?depth=4 (%) |" in text  # numeric order
    assert "| r1 | 90.0 | 30.0 | 25.0 | 12.5 |" in text
    assert "- ✗ wrong `3. a == 5 [1]`" in text and "- ✓ `4. b == 7 [1, 2]`" in text
    assert "<li class='bad'>✗ wrong <code>3. a == 5 [1]</code></li>" in page.read_text()
