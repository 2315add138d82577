"""The stage graph: done stages are skipped, --from reruns downstream, --resume keeps a partial stage."""

from pathlib import Path

import pytest

from r1lab.config import load_config
from r1lab.errors import ConfigError, Interrupted
from r1lab.pipeline import Pipeline, Stage
from r1lab.recipe import RecipeConfig, build_pipeline


def make(calls, fail_at=None):
    def producer(name):
        def run(ctx):
            calls.append((name, ctx.resume))
            if name == fail_at:
                (ctx.stage_dir / "partial").write_text("x")
                raise KeyboardInterrupt
            up = {n: (ctx.artifact(n, "file").read_text()) for n in ctx.results}
            (ctx.stage_dir / "out.txt").write_text(name + "|" + ",".join(sorted(up.values())))
            return {"artifacts": {"file": f"{name}/out.txt"}, "summary": {"n": len(up)}}
        return run

    return Pipeline([Stage("a", producer("a")), Stage("b", producer("b"), needs=("a",)),
                     Stage("c", producer("c"), needs=("b",))], log=lambda s: None)


def test_runs_in_order_and_skips_done(tmp_path):
    calls = []
    res = make(calls).run(tmp_path)
    assert [c[0] for c in calls] == ["a", "b", "c"]
    assert (tmp_path / "c" / "out.txt").read_text() == "c|a|,b|a|"
    assert res["c"]["summary"] == {"n": 2}
    calls.clear()
    make(calls).run(tmp_path)
    assert calls == []


def test_from_stage_reruns_it_and_later(tmp_path):
    calls = []
    make(calls).run(tmp_path)
    calls.clear()
    make(calls).run(tmp_path, from_stage="b")
    assert [c[0] for c in calls] == ["b", "c"]
    with pytest.raises(ConfigError, match="unknown stage"):
        make(calls).run(tmp_path, from_stage="zzz")


def test_killed_stage_restarts_or_resumes(tmp_path):
    calls = []
    with pytest.raises(Interrupted, match="interrupted during b; `r1lab run --resume` continues"):
        make(calls, fail_at="b").run(tmp_path)
    assert not (tmp_path / "b" / "done.json").exists()
    calls.clear()
    make(calls).run(tmp_path, resume=True)
    assert calls == [("b", True), ("c", True)]
    assert (tmp_path / "b" / "partial").exists()  # resume keeps the partial stage directory
    calls.clear()
    with pytest.raises(Interrupted):
        make(calls, fail_at="c").run(tmp_path, from_stage="c")
    make(calls).run(tmp_path)  # no resume: partial directory cleared
    assert not (tmp_path / "c" / "partial").exists()


def test_needs_must_precede():
    p = Pipeline([Stage("b", lambda c: {}, needs=("a",)), Stage("a", lambda c: {})], log=lambda s: None)
    with pytest.raises(ConfigError, match="needs"):
        p.run("/tmp/r1lab-never")


def test_recipe_stage_subset_keeps_order_and_checks_inputs():
    """`stages:` runs part of the recipe (e.g. an R1-Zero-only sweep); eval evaluates what ran."""
    smoke = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    cfg = load_config(RecipeConfig, smoke, ["stages=[eval,r1_zero,base,data]"])
    pipeline = build_pipeline(cfg, log=lambda _: None)
    assert pipeline.names() == ["data", "base", "r1_zero", "eval"]
    assert pipeline.stages[-1].needs == ("data", "base", "r1_zero")
    with pytest.raises(ConfigError, match="needs"):
        build_pipeline(load_config(RecipeConfig, smoke, ["stages=[data,r1_zero,eval]"]))._check()
    with pytest.raises(ConfigError, match="unknown stage"):
        build_pipeline(load_config(RecipeConfig, smoke, ["stages=[data,pretrain]"]))
