"""One recipe for every model: a pretrained chat model (`model.init_from`, a chat template) goes through the same
`r1lab run` stages as the tiny default. Its base is the checkpoint itself (nothing pretrained), its prompts and
cold-start traces use its chat template, and the tiny student keeps its own plain template: distillation renders
the teacher's problems in the student's template."""

import json
from pathlib import Path

import pytest
import torch

from r1lab.data import get_template
from r1lab.recipe import run_recipe

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")


PROBLEMS = [(f"{a}{op}{b}=?", f"<think>\n{a}{op}{b}={a + b if op == '+' else a - b}\n</think>\n<answer>\n"
             f"{a + b if op == '+' else a - b}\n</answer>") for a in range(1, 10) for b in range(1, 10) for op in "+-"
            if op == "+" or a >= b]


def _chat(problem: str) -> str:
    return f"<|user|>{problem}\n<|assistant|>"


def _teach(model, tok, steps: int = 150) -> None:
    """A few hundred Adam steps on the task in the chat format, so the 'pretrained' model stops and is
    sometimes right (rejection sampling then keeps something), as a real instruct model would."""
    rows = [tok(_chat(p) + c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for p, c in PROBLEMS]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    labels = torch.where(ids == tok.pad_token_id, -100, ids)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    """A 2-layer Llama with a byte-level BPE that has a chat template, saved as a user's HF checkpoint."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from r1lab.data.tokenizer import train_tokenizer

    texts = [_chat(p) + c for p, c in PROBLEMS]
    tok = train_tokenizer(texts + ["<|user|><|assistant|>"], vocab_size=300)
    tok.chat_template = CHAT
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=256, eos_token_id=tok.eos_token_id,
                                         bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id))
    _teach(model, tok)
    out = tmp_path_factory.mktemp("chat_model") / "ckpt"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def run(chat_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained") / "run"
    run_recipe(SMOKE, out, overrides=[f"model.init_from={chat_model}", "task.template=chat",
                                      "eval.fallbacks=[answer_is, last_number]"], log=lambda *_: None)
    return out


def done(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "done.json").read_text())


def test_the_pretrained_checkpoint_is_the_base(run, chat_model):
    base = done(run, "base")
    assert base["artifacts"]["checkpoint"] == str(chat_model.resolve())
    assert not (run / "base" / "checkpoint").exists()  # nothing was pretrained
    assert done(run, "student_base")["summary"]["steps"] > 0  # the student still is


def test_cold_start_and_rl_prompts_use_the_models_chat_template(run):
    cold = [json.loads(line) for line in (run / "data" / "cold_start.jsonl").read_text().splitlines()]
    assert cold and all(r["prompt"].startswith("<|user|>") and r["prompt"].endswith("<|assistant|><think>\n")
                        for r in cold)
    kept = [json.loads(line) for line in (run / "distill_data" / "data.jsonl").read_text().splitlines()]
    assert all(r["prompt"].startswith("<|user|>") for r in kept)


def test_every_checkpoint_is_evaluated_in_its_own_template(run, chat_model):
    rows = json.loads((run / "eval" / "results.json").read_text())["checkpoints"]
    assert [r["stage"] for r in rows] == ["base", "r1_zero", "cold_start", "r1_rl", "r1_sft", "r1",
                                          "student_base", "student_distill", "student_rl"]
    assert rows[0]["name"] == f"base ({chat_model})"
    examples = json.loads((run / "eval" / "examples.json").read_text())
    plain = get_template("plain")
    for row in rows:
        for ex in examples[row["name"]]:
            is_student = row["stage"].startswith("student")
            assert ex["prompt"].startswith("<|user|>") != is_student, (row["stage"], ex["prompt"])
            if is_student:
                assert ex["prompt"].endswith(plain.prefill)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["r1_zero_gain_points"] is not None and summary["distill_minus_rl_points"] is not None


COLD_FROM_SAMPLES = ("cold_start_data={source: r1_zero, n: 4, max_new_tokens: 40, min_language_share: 0.0, "
                     "data: {size: 16}, accept: [{name: accuracy}, {name: format}, {name: computed_steps}]}")


@pytest.fixture(scope="module")
def sampled_cold_start(chat_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("sampled") / "run"
    run_recipe(SMOKE, out, overrides=[f"model.init_from={chat_model}", "task.template=chat", "data.cold_start_size=0",
                                      COLD_FROM_SAMPLES, "stages=[data, base, r1_zero, cold_start_data, cold_start]"],
               log=lambda *_: None)
    return out


def test_the_cold_start_can_come_from_r1_zeros_own_verified_samples(sampled_cold_start):
    """R1 §2.3.1: R1-Zero's outputs in a readable format, verified: every kept trace is right, strictly formatted
    and shows at least one intermediate step, and the cold-start SFT trains on exactly those."""
    from r1lab.data.completion_metrics import computed_steps
    from r1lab.rewards import get_reward

    summary = done(sampled_cold_start, "cold_start_data")["summary"]
    assert summary["sampled_from"] == "r1_zero" and summary["programmatic"] == 0 and summary["sampled"] > 0
    kept = [json.loads(line) for line in
            (sampled_cold_start / "cold_start_data" / "cold_start.jsonl").read_text().splitlines()]
    assert len(kept) == summary["sampled"]
    fmt = get_reward("format")([r["completion"] for r in kept], prefill=["<think>\n"] * len(kept))
    assert fmt == [1.0] * len(kept)
    assert all(computed_steps(r["completion"]) >= 1 for r in kept)
    assert done(sampled_cold_start, "cold_start")["summary"]["steps"] > 0


def test_a_cold_start_without_any_data_is_refused(tmp_path):
    from r1lab.errors import R1labError

    with pytest.raises(R1labError, match="cold_start_size"):
        run_recipe(SMOKE, tmp_path / "run", overrides=["data.cold_start_size=0"], log=lambda *_: None)
    assert not (tmp_path / "run").exists()


def test_a_few_shot_cold_start_shows_the_worked_solutions_and_keeps_zero_shot_prompts(chat_model, tmp_path):
    """R1's other cold-start source: the base prompted with worked solutions (the recipe's own programmatic ones);
    what it gets right in the strict format is kept under the plain prompt, beside the worked solutions."""
    few_shot = ("cold_start_data={source: base, few_shot: 2, n: 4, max_new_tokens: 40, min_language_share: 0.0, "
                "data: {size: 16}, accept: [{name: accuracy}, {name: format}]}")
    run = tmp_path / "run"
    run_recipe(SMOKE, run, overrides=[f"model.init_from={chat_model}", "task.template=chat", "data.cold_start_size=6",
                                      few_shot, "stages=[data, base, cold_start_data]"], log=lambda *_: None)
    summary = done(run, "cold_start_data")["summary"]
    assert summary["few_shot"] == 2 and summary["programmatic"] == 6
    assert summary["counts"]["sampled"] == 64
    settings = json.loads((run / "cold_start_data" / "data.summary.json").read_text())["sampling"]
    assert settings["few_shot"] == 2
    kept = [json.loads(line) for line in (run / "cold_start_data" / "cold_start.jsonl").read_text().splitlines()]
    assert len(kept) == summary["sampled"] + 6
    assert all(r["prompt"].count("<|user|>") == 1 for r in kept)  # no worked example left in an SFT prompt
