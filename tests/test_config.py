"""Typed YAML configs: unknown keys, wrong types and missing files are one-line errors naming the key or file."""

import pytest

from r1lab.config import StrictModel, apply_overrides, load_config
from r1lab.errors import ConfigError


class Optim(StrictModel):
    lr: float = 1e-3
    steps: int = 10


class Run(StrictModel):
    name: str = "tiny"
    optim: Optim = Optim()


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_and_values(tmp_path):
    cfg = load_config(Run, write(tmp_path, "name: x\noptim:\n  lr: 0.5\n"))
    assert cfg.name == "x" and cfg.optim.lr == 0.5 and cfg.optim.steps == 10


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'optim.lrr'"):
        load_config(Run, write(tmp_path, "optim:\n  lrr: 0.5\n"))


def test_wrong_type_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(Run, write(tmp_path, "optim:\n  steps: many\n"))
    msg = str(e.value)
    assert "optim.steps" in msg and "'many'" in msg and "\n" not in msg


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(Run, tmp_path / "nope.yaml")


def test_invalid_yaml_names_line(tmp_path):
    with pytest.raises(ConfigError, match=r"line 2"):
        load_config(Run, write(tmp_path, "name: a\noptim: a: b\n"))


def test_overrides_parse_yaml_scalars():
    data = apply_overrides({"optim": {"lr": 1.0}}, ["optim.lr=2e-4", "optim.steps=3", "name=abc"])
    assert data == {"optim": {"lr": 2e-4, "steps": 3}, "name": "abc"}
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["oops"])


class Stages(StrictModel):
    first: Run = Run()
    second: Run = Run()
    third: Run = Run()


def test_an_override_changes_only_its_section_when_sections_share_a_yaml_anchor(tmp_path):
    """`second: *rl` and `third: {<<: *rl}` reuse the anchored mapping; overriding `first.optim.steps` must not
    reach them (it once silently did, and changed stages nobody named)."""
    path = write(tmp_path, "first: &rl\n  optim: {lr: 0.5, steps: 20}\nsecond: *rl\nthird:\n  <<: *rl\n  name: t\n")
    cfg = load_config(Stages, path, ["first.optim.steps=40", "third.optim.lr=0.1"])
    assert (cfg.first.optim.steps, cfg.second.optim.steps, cfg.third.optim.steps) == (40, 20, 20)
    assert (cfg.first.optim.lr, cfg.second.optim.lr, cfg.third.optim.lr) == (0.5, 0.5, 0.1)
