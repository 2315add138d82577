"""`r1lab eval` end to end on real (tiny, untrained) checkpoints: an r1lab directory and an HF Llama directory."""

from __future__ import annotations

import json

import pytest
import torch

from r1lab.cli import main
from r1lab.data import format_completion, load_task
from r1lab.data.tokenizer import save_tokenizer, train_tokenizer
from r1lab.eval import evaluate

TASK = "arith?operands=2"


@pytest.fixture(scope="module")
def tokenizer():
    records = load_task(TASK, "train", 100, 0)
    return train_tokenizer([r["prompt"] + "\n" + format_completion(r["prompt"], r["answer"]) for r in records], vocab_size=300)


@pytest.fixture(scope="module")
def r1lab_dir(tmp_path_factory, tokenizer):
    from r1lab.model import ModelConfig, Transformer

    torch.manual_seed(0)
    cfg = ModelConfig.from_preset(
        "tiny", vocab_size=len(tokenizer), dim=32, inter_dim=64, moe_inter_dim=16, n_layers=2, kv_lora_rank=16,
        q_lora_rank=24, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, max_seq_len=64, original_seq_len=64,
    )
    directory = tmp_path_factory.mktemp("r1lab_ckpt")
    Transformer(cfg).save_pretrained(directory)
    save_tokenizer(tokenizer, directory)
    return directory


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         max_position_embeddings=64))
    directory = tmp_path_factory.mktemp("hf_ckpt")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_cli_eval_on_an_r1lab_checkpoint_writes_json_and_markdown(r1lab_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["eval", str(r1lab_dir), "--task", TASK, "--n", "2", "--size", "2", "--max-new-tokens", "6",
                 "--out", str(out), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((out / "eval.json").read_text())
    assert printed["overall"] == written["overall"]
    s = written["settings"]
    assert (s["n"], s["temperature"], s["top_p"], s["max_new_tokens"], s["template"]) == (2, 0.6, 0.95, 6, "plain")
    assert written["overall"]["problems"] == 2 and len(written["problems"][0]["correct"]) == 2
    assert 0.0 <= written["overall"]["pass@1"] <= 1.0
    assert all(1 <= n <= 6 for p in written["problems"] for n in p["lengths"])  # token counts from the engine
    assert "pass@1" in (out / "eval.md").read_text()


def test_evaluate_on_an_hf_model_directory(hf_dir):
    result = evaluate(str(hf_dir), TASK, n=2, size=2, max_new_tokens=6, template="plain")
    assert result["overall"]["problems"] == 2
    assert result["settings"]["template"] == "plain" and result["model"] == str(hf_dir)


def test_cli_eval_on_a_missing_directory_is_one_error_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope"), "--task", TASK]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
