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


def test_headline_reads_as_figures_with_units_and_what_they_compare(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({
        "rl_gain_points": 14.75, "r1_zero_length_growth": 0.2345, "effective_correction_growth": None,
        "effective_corrections_first_last": [0.01, 0.0312], "base_reflection_rate_step0": 0.125,
        "mean_length_after_rl": 31.55625, "custom_figure": 3, "stage_seconds": {"data": 12.0, "base": 300.5}}))
    rl = tmp_path / "r1_zero"
    rl.mkdir()
    (rl / "aha.json").write_text(json.dumps({"step": 7, "prompt": "47+38=?", "completion": "7+8=14\nwait, ..."}))
    md, page = write_report(tmp_path)
    text = md.read_text()
    assert "| Reasoning-RL gain | +14.8 points | reasoning RL vs cold-start SFT |" in text
    assert "| Thinking time under R1-Zero | +23% |" in text
    assert "| Effective self-corrections under R1-Zero | – (not measurable in this run) |" in text
    assert "| Effective self-corrections per completion | 0.010 -> 0.031 |" in text
    assert "| Reflection rate of the base's own samples | 12.5% |" in text
    assert "| Completion length after reasoning RL | 31.6 tokens | reasoning RL |" in text
    assert "| custom_figure | 3 |" in text and "stage_seconds" not in text and "{'data'" not in text
    assert (tmp_path / "plots" / "stage_times.png").read_bytes()[:4] == b"\x89PNG"
    assert "### r1_zero, RL step 7" in text and "47+38=?" in text
    assert "The first effective self-correction" in page.read_text()


def test_thinking_headline_from_rl_metrics_and_eval_groups(tmp_path):
    from r1lab.recipe.stages import thinking_headline, window_means

    rows = [{"step": i, "completions/mean_length_correct": 10 + i, "completions/effective_corrections": 0.01 * (1 + i),
             "completions/reflection_rate": 0.2 + 0.01 * i, "completions/style/checked/share": 0.4 - 0.01 * i,
             "completions/style/checked/accuracy": 0.2, "completions/style/worked/accuracy": 0.35}
            for i in range(20)]
    (tmp_path / "r1_zero").mkdir()
    (tmp_path / "r1_zero" / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert window_means(rows, "completions/mean_length_correct") == (10.5, 28.5)  # steps 0-1 and 18-19
    by_stage = {"base": {"pass@1": 0.5, "group_lengths": {"0": 10.0, "2": 15.0}},
                "r1_zero": {"pass@1": 0.6, "group_lengths": {"0": 10.0, "1": 99.0, "2": 30.0}},
                "cold_start": {"pass@1": 0.45}, "r1_rl": {"pass@1": 0.7}, "r1_sft": {"pass@1": 0.55},
                "r1": {"pass@1": 0.8}, "student_base": {"pass@1": 0.1}, "student_distill": {"pass@1": 0.4}}
    out = thinking_headline(tmp_path, by_stage)
    assert out["stage_drop_points"] == 5.0  # base 50 -> cold start 45
    assert out["r1_final_minus_base_points"] == 30.0
    assert out["r1_zero_length_growth"] == round(28.5 / 10.5 - 1, 3)
    assert out["effective_correction_growth"] == round(0.195 / 0.015, 3)
    assert out["base_reflection_rate_step0"] == 0.2
    assert out["adaptive_thinking_gain"] == 2.0  # (30/10) / (15/10)
    assert out["checked_minus_worked_points"] == -15.0  # checking costs 15 points at the start
    assert out["r1_zero_checked_share_change_points"] == -18.0  # 0.395 -> 0.215
    assert thinking_headline(tmp_path / "nowhere", {})["r1_zero_length_growth"] is None


def test_the_report_says_where_the_cold_start_came_from_and_shows_format_and_steps(tmp_path):
    run = make_run(tmp_path)
    results = json.loads((run / "eval" / "results.json").read_text())
    results["checkpoints"][1].update(format_rate=0.99, think_steps_correct_median=2.0)
    (run / "eval" / "results.json").write_text(json.dumps(results))
    (run / "cold_start_data").mkdir()
    (run / "cold_start_data" / "done.json").write_text(json.dumps({"summary": {
        "sampled_from": "base", "few_shot": 3, "sampled": 32, "programmatic": 300}}))
    md, page = write_report(run)
    text = md.read_text()
    line = "Cold-start data: 32 verified samples of base, 3-shot prompts, and 300 programmatic worked solutions."
    assert line in text and line in page.read_text()
    assert "| r1 | 87.5 | [80.0, 90.0] | 95.0 | 99.0 | – | 2.0 |" in text


def test_the_report_shows_how_each_checkpoint_answers_and_the_style_shares_per_rl_step(tmp_path):
    run = make_run(tmp_path)
    rows = [json.loads(line) for line in (run / "r1_rl" / "metrics.jsonl").read_text().splitlines()[:-1]]
    for r in rows:
        r.update({"completions/style/answer_only/share": 0.2, "completions/style/worked/share": 0.5,
                  "completions/style/checked/share": 0.3})
    (run / "r1_rl" / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    results = json.loads((run / "eval" / "results.json").read_text())
    results["checkpoints"][0].update({"style/answer_only/share": 0.25, "style/answer_only/accuracy": 0.04,
                                      "style/worked/share": 0.75, "style/worked/accuracy": 0.5,
                                      "style/checked/share": 0.0})
    (run / "eval" / "results.json").write_text(json.dumps(results))
    md, page = write_report(run)
    text = md.read_text()
    assert "| checkpoint | answer only (%) | worked steps (%) | steps + check (%) |" in text
    assert "| base | 25.0 (4.0) | 75.0 (50.0) | 0.0 |" in text  # a style never sampled has no accuracy
    assert "| r1 |" not in text.split("How each checkpoint answers")[1].split("## Training")[0]  # no style data
    assert (run / "plots" / "solution_styles.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "25.0 (4.0)" in page.read_text()
