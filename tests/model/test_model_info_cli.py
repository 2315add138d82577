"""`r1lab model-info`: presets and checkpoint directories, text and JSON."""

import json

from conftest import tiny_config

from r1lab.cli import main
from r1lab.model import Transformer


def test_model_info_json_for_v3_preset(capsys):
    assert main(["model-info", "deepseek-v3", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert 670e9 < info["total_params"] < 672e9 and 37e9 < info["active_params"] < 38e9
    assert info["kv_bytes_per_token_mla"] == 70272 and info["kv_bytes_per_token_mha"] == 3997696
    assert info["forward_flops_per_token"] > 0 and info["mtp_params"] > 0


def test_model_info_on_checkpoint_dir_matches_preset_counts(tmp_path, capsys):
    model = Transformer(tiny_config(vocab_size=97))
    model.save_pretrained(tmp_path / "ckpt")
    assert main(["model-info", str(tmp_path / "ckpt"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total_params"] == model.num_parameters(include_mtp=False)
    assert main(["model-info", str(tmp_path / "ckpt")]) == 0
    text = capsys.readouterr().out
    assert "total_params" in text and "MLA" in text and "MHA" in text


def test_model_info_bad_argument_is_one_line_error(tmp_path, capsys):
    assert main(["model-info", "no-such-preset"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    (tmp_path / "ckpt").mkdir()
    assert main(["model-info", str(tmp_path / "ckpt")]) == 2
    assert "config.json" in capsys.readouterr().err
