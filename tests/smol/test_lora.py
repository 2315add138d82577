"""LoRA (peft) policies: only adapters train, the reference is the base with adapters off, the engine samples
from base + adapter, checkpoints are the merged model, and a short GRPO run with LoRA resumes exactly.

A tiny random LlamaForCausalLM with r1lab's own byte-level BPE stands in for SmolLM2 (seconds, not minutes).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from r1lab.config import read_yaml, validate
from r1lab.engine import SamplingParams, make_sampler
from r1lab.errors import CheckpointError, ConfigError, R1labError
from r1lab.train.core.checkpoint import load_weights, save_weights
from r1lab.train.core.lora import (
    ADAPTER_DIR,
    LoraSpec,
    adapters_disabled,
    apply_lora,
    has_lora,
)
from r1lab.train.rl.batch import build_rollout
from r1lab.train.rl.forward import completion_logprobs, forward_outputs

peft = pytest.importorskip("peft")
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TEXTS = ["Calculate 5 + 3.\n<think>\n5 + 3 is 8.", "Calculate 2 - 1.\n<think>\n2 - 1 is 1."] * 10


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer():
    from r1lab.data.tokenizer import train_tokenizer

    return train_tokenizer(TEXTS, vocab_size=300)


def tiny_llama(tokenizer, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      bos_token_id=None, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg)


def adapted(tokenizer, *, nonzero: bool = True, **spec):
    """(base model, a deep copy of it with LoRA on every projection; B random when `nonzero`)."""
    base = tiny_llama(tokenizer).eval()
    model = apply_lora(copy.deepcopy(base), LoraSpec(r=4, alpha=8, **spec))
    if nonzero:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".lora_B." in name:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return base, model.eval()


def base_params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_" not in n}


def grouped_batch():
    """Two prompts x 3 completions of ragged lengths (the shared-prefix path applies) and a lone row."""
    def comp(prompt, tokens):
        return SimpleNamespace(prompt_token_ids=prompt, token_ids=tokens, logprobs=[], finish_reason="stop")
    a, b = [5, 6, 7, 8], [9, 10]
    return build_rollout([comp(a, [11, 12, 13]), comp(a, [14]), comp(a, [15, 16, 17, 18]),
                          comp(b, [20, 21]), comp(b, [22, 23, 24]), comp(b, [26, 27]), comp([30, 31], [33])], 0)


# ---- what trains ------------------------------------------------------------------------------------------------
def test_only_adapter_parameters_train_and_the_base_stays_bitwise(tokenizer, tmp_path):
    from r1lab.train import FunctionStage, TrainConfig, train

    _, model = adapted(tokenizer, nonzero=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert len(trainable) == 2 * 7 * 2  # A and B of 7 projections in 2 layers
    before, adapters = base_params(model), {n: p.detach().clone() for n, p in model.named_parameters()
                                            if n in trainable}
    ids = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10]])

    def loss(m, batch):
        logits, _ = forward_outputs(m, batch, torch.ones_like(batch))
        return torch.nn.functional.cross_entropy(logits[0, :-1], batch[0, 1:]), {}

    cfg = TrainConfig(out_dir=str(tmp_path / "run"), max_steps=2, lr=1e-2, progress=False, tensorboard=False)
    train(model, FunctionStage(lambda step, micro: ids, loss), cfg)
    after = dict(model.named_parameters())
    assert all(torch.equal(after[n], t) for n, t in before.items())  # frozen base: not one bit moved
    # B starts at 0, so step 1 moves only B; step 2 then reaches A through B
    assert all(not torch.equal(after[n], t) for n, t in adapters.items())


# ---- reference policy -------------------------------------------------------------------------------------------
def test_reference_logprobs_with_adapters_disabled_are_the_base_models(tokenizer):
    base, model = adapted(tokenizer)
    batch = grouped_batch()
    from r1lab.train.rl import shared_prefix

    assert shared_prefix.applies(model, batch)  # the fast path sees the LoRA model as a plain Llama
    with torch.no_grad():
        ref, _ = completion_logprobs(base, batch)
        on, _ = completion_logprobs(model, batch)
        with adapters_disabled(model):
            off, _ = completion_logprobs(model, batch)
        again, _ = completion_logprobs(model, batch)
    live = batch["comp_mask"] > 0
    assert torch.allclose(off[live], ref[live], atol=1e-5)
    assert (on - ref)[live].abs().max() > 1e-2  # the adapters matter, so the check above is not vacuous
    assert torch.equal(again, on)  # adapters back on after the context
    assert all(p.requires_grad for n, p in model.named_parameters() if ".lora_" in n)


def test_shared_prefix_forward_on_a_lora_model_equals_the_plain_forward_and_reaches_the_adapters(tokenizer):
    from r1lab.algo import token_logprobs
    from r1lab.train.rl.forward import gather_positions

    _, model = adapted(tokenizer)
    batch = grouped_batch()
    fast, _ = completion_logprobs(model, batch)
    logits, _ = forward_outputs(model, batch["input_ids"], batch["attention_mask"])
    plain = token_logprobs(gather_positions(logits, batch["comp_index"] - 1).float(), batch["targets"])
    live = batch["comp_mask"] > 0
    assert torch.allclose(fast[live], plain[live], atol=1e-5)
    (fast * batch["comp_mask"]).sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if ".lora_A." in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


# ---- sampling ---------------------------------------------------------------------------------------------------
def greedy_by_full_forwards(model, prompt: list[int], steps: int) -> list[int]:
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    return seq[len(prompt):]


def test_sampler_decodes_with_base_plus_adapter_weights_and_follows_training_updates(tokenizer):
    base, model = adapted(tokenizer)
    sampler = make_sampler(model, tokenizer)
    assert sampler.backend == "MergedLoraRunner"
    params = SamplingParams(temperature=0, max_new_tokens=8, ignore_eos=True)
    prompts = [[3, 4, 5], [7, 8, 9, 10, 11]]
    frozen = base_params(model)
    for _ in range(2):
        outs = sampler.generate(prompts, params)
        expected = [greedy_by_full_forwards(model, p, 8) for p in prompts]
        assert [o[0].token_ids for o in outs] == expected
        assert expected != [greedy_by_full_forwards(base, p, 8) for p in prompts]  # adapters change the output
        with torch.no_grad():  # an optimizer step on the adapters: the runner must re-pack
            for name, p in model.named_parameters():
                if ".lora_B." in name:
                    p.mul_(-1.5)
        sampler.sync_weights()
    after = dict(model.named_parameters())
    assert all(torch.equal(after[n], t) for n, t in frozen.items())  # packing merged weights left W alone


def test_vllm_backend_refuses_a_lora_policy(tokenizer):
    _, model = adapted(tokenizer)
    with pytest.raises(ConfigError, match="LoRA"):
        make_sampler(model, tokenizer, backend="vllm")


# ---- checkpoints ------------------------------------------------------------------------------------------------
def test_checkpoint_is_the_merged_model_and_the_adapter_reloads_for_resume(tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    from r1lab.sources import load_model

    base, model = adapted(tokenizer)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_weights(model, ckpt)
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        want = model(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(ckpt)
        assert not has_lora(plain)
        assert torch.allclose(plain(ids).logits, want, atol=1e-5)
        loaded, _ = load_model(ckpt)  # what eval / rejection sampling / r1lab generate do
        assert torch.allclose(loaded(ids).logits, want, atol=1e-5)
        from_peft = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(ckpt / ADAPTER_DIR))
        assert torch.allclose(from_peft(input_ids=ids).logits, want, atol=1e-5)  # peft reads the adapter too

    _, fresh = adapted(tokenizer, nonzero=False)  # resume: the same base with new (zero-B) adapters
    params = {n: p for n, p in fresh.named_parameters()}
    load_weights(fresh, ckpt)
    assert all(p is params[n] for n, p in fresh.named_parameters())  # loaded in place: optimizer refs hold
    with torch.no_grad():
        assert torch.allclose(fresh(ids).logits, want, atol=1e-6)

    other = apply_lora(tiny_llama(tokenizer, seed=5), LoraSpec(r=4, alpha=8))
    with pytest.raises(CheckpointError, match="different base model"):
        load_weights(other, ckpt)
    with pytest.raises(CheckpointError, match="not from a LoRA run"):
        load_weights(fresh, tmp_path)


# ---- configuration ----------------------------------------------------------------------------------------------
def test_config_errors_are_one_line(tokenizer, monkeypatch):
    from r1lab.model import ModelConfig, Transformer
    from r1lab.train.core.model_spec import ModelSpec
    from r1lab.train.rl import RLConfig

    with pytest.raises(ConfigError, match=r"model\.lora.*extra|lora.*rank"):
        validate(RLConfig, {"model": {"init_from": "x", "lora": {"rank": 8}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="init_from"):
        validate(RLConfig, {"model": {"lora": {}}}, "cfg.yaml")
    assert ModelSpec.model_validate({"init_from": "x", "lora": {}}).lora == LoraSpec()
    r1lab_model = Transformer(ModelConfig.from_preset("tiny", vocab_size=64, dim=32, n_layers=1, n_heads=2,
                                                      mtp_depth=0))
    with pytest.raises(ConfigError, match="HF causal LMs"):
        apply_lora(r1lab_model, LoraSpec())
    with pytest.raises(ConfigError, match="target_modules"):
        apply_lora(tiny_llama(tokenizer), LoraSpec(target_modules=["no_such_proj"]))
    with pytest.raises(ConfigError, match="already"):
        apply_lora(adapted(tokenizer)[1], LoraSpec())
    monkeypatch.setitem(sys.modules, "peft", None)  # peft not installed
    with pytest.raises(R1labError, match=r"pip install 'r1lab\[smollm2\]'") as e:
        apply_lora(tiny_llama(tokenizer), LoraSpec())
    assert "\n" not in str(e.value)


def test_recipe_configs(tokenizer):
    from r1lab.train.rl import RLConfig

    full = validate(RLConfig, read_yaml(CONFIGS / "smollm2_grpo.yaml"), "smollm2_grpo.yaml")
    assert full.model.lora is None  # the measured recipe is full fine-tuning
    lora = validate(RLConfig, read_yaml(CONFIGS / "smollm2_lora.yaml"), "smollm2_lora.yaml")
    assert lora.model.lora is not None and lora.model.init_from == full.model.init_from
    assert set(lora.model.lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                   "up_proj", "down_proj"}
    assert lora.data == full.data and lora.rewards == full.rewards


# ---- end to end -------------------------------------------------------------------------------------------------
def text_length(completions, **_):
    """A reward every group spreads over (random BPE tokens decode to texts of different lengths)."""
    return [len(t) / 20 for t in completions]


def run_rl(init_dir: Path, out_dir: Path, **train):
    from r1lab.train.rl import RLConfig, rl

    cfg = RLConfig.model_validate({
        "model": {"init_from": str(init_dir), "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}},
        "data": {"template": "plain", "think_prefill": False},
        "rollout": {"prompts_per_step": 2, "group_size": 4, "max_new_tokens": 6},
        "rewards": [{"name": "text_length"}], "preset": "r1", "objective": {"beta": 0.04}, "num_rollouts": 2,
        "train": {"out_dir": str(out_dir), "lr": 5e-2, "schedule": "constant", "progress": False,
                  "tensorboard": False, "seed": 0, "entropy_floor": None, **train}})
    records = [{"id": str(i), "prompt": "Calculate 5 + 3." if i % 2 else "Calculate 2 - 1.", "answer": "",
                "task": "toy", "metadata": {}} for i in range(4)]
    return rl(cfg, records=records, reward_fns={"text_length": text_length})


def test_grpo_with_lora_end_to_end_and_resume(tokenizer, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    init = tmp_path / "init"
    start = tiny_llama(tokenizer)
    start.save_pretrained(str(init))
    tokenizer.save_pretrained(str(init))

    full = run_rl(init, tmp_path / "full")
    assert len(full.history) == 2
    assert full.history[0]["kl"] == pytest.approx(0.0, abs=1e-7)  # B = 0: the policy starts as its reference
    assert full.history[1]["kl"] > 0  # the adapters moved it away from the base (the reference)
    merged = AutoModelForCausalLM.from_pretrained(full.checkpoint)
    delta = {n: (merged.state_dict()[n] - t).abs().max() for n, t in start.state_dict().items()}
    assert delta["model.layers.0.self_attn.q_proj.weight"] > 0  # trained: merged != base on adapted layers
    assert delta["model.layers.0.self_attn.k_proj.weight"] == 0 and delta["model.embed_tokens.weight"] == 0

    run_rl(init, tmp_path / "split", max_steps=1)
    resumed = run_rl(init, tmp_path / "split", max_steps=2, resume=True)
    assert len(resumed.history) == 1
    for key in ("loss", "reward", "kl"):
        assert resumed.metrics[key] == pytest.approx(full.metrics[key], rel=1e-5, abs=1e-7), key
    a = load_file(str(full.checkpoint / ADAPTER_DIR / "adapter_model.safetensors"))
    b = load_file(str(resumed.checkpoint / ADAPTER_DIR / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
