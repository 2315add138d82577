"""Tiny, deterministic SFT / RL / MoE problems that run the same in one process and under torchrun, so a test
can compare a 2-rank step with a 1-process step on the same global batch."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from r1lab.engine import Completion
from r1lab.model import ModelConfig, Transformer

HERE = Path(__file__).resolve().parent


def char_tokenizer(chars: str = "abc?=+0123456789") -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def tiny_moe(vocab_size: int, seed: int = 0, **overrides) -> Transformer:
    """Every V3 feature on (MLA, 4 routed experts in 2 groups + 1 shared, MTP), a few thousand parameters."""
    torch.manual_seed(seed)
    cfg = ModelConfig.from_preset("tiny", vocab_size=vocab_size, dim=32, n_layers=2, n_dense_layers=1, inter_dim=48,
                                  moe_inter_dim=16, n_heads=2, q_lora_rank=16, kv_lora_rank=16, qk_nope_head_dim=8,
                                  qk_rope_head_dim=8, v_head_dim=8, n_routed_experts=4, n_expert_groups=2,
                                  n_limited_groups=2, n_activated_experts=2, max_seq_len=64, original_seq_len=64,
                                  pad_token_id=0, eos_token_id=1, bos_token_id=1, **overrides)
    model = Transformer(cfg)
    model.train()
    return model


def sft_records(n: int = 8) -> list[dict]:
    """Prompts and completions of different lengths (so rows carry different numbers of target tokens)."""
    return [{"prompt": f"{i}+{i % 3}=", "completion": str(i + i % 3) + "a" * (i % 4)} for i in range(n)]


def rl_records(n: int = 8) -> list[dict]:
    return [{"id": str(i), "prompt": "?" * (1 + i % 3), "answer": "", "task": "toy", "metadata": {}}
            for i in range(n)]


class PromptHashSampler:
    """Completions that depend only on (prompt text, sample index): a world-size-independent stand-in for the
    engine, whose random streams are keyed by the prompt's index within a call."""

    def __init__(self, tokenizer, vocab: str = "abc"):
        self.tok, self.vocab = tokenizer, vocab

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            ids = self.tok(prompt)["input_ids"]
            group = []
            for j in range(params.n):
                h = int(hashlib.sha256(f"{prompt}|{j}".encode()).hexdigest(), 16)
                k = 1 + h % params.max_new_tokens
                text = "".join(self.vocab[(h >> (2 * t)) % len(self.vocab)] for t in range(k))
                toks = self.tok(text, add_special_tokens=False)["input_ids"]
                group.append(Completion(text=text, token_ids=toks, logprobs=[-1.0] * len(toks),
                                        finish_reason="length" if k == params.max_new_tokens else "stop",
                                        prompt_token_ids=ids))
            out.append(group)
        return out


def share_of_a(completions, **_):
    return [t.count("a") / max(len(t), 1) for t in completions]


def run_sft(out_dir: Path, strategy: str = "auto", steps: int = 1, **model_overrides):
    from r1lab.train.stages.sft import SFTConfig, sft

    tok = char_tokenizer()
    cfg = SFTConfig.model_validate({
        "data": {"batch_size": 4, "packing": False, "max_len": 32},
        "train": {"out_dir": str(out_dir), "max_steps": steps, "grad_accum": 2, "lr": 1e-2, "max_grad_norm": 0.5,
                  "schedule": "constant", "progress": False, "tensorboard": False, "dist": {"strategy": strategy}}})
    model = tiny_moe(len(tok), **model_overrides)
    result = sft(cfg, records=sft_records(), model=model, tokenizer=tok)
    return result, model


def run_rl(out_dir: Path, preset: str = "r1", strategy: str = "auto"):
    from r1lab.train.rl import RLConfig, rl

    tok = char_tokenizer()
    cfg = RLConfig.model_validate({
        "data": {"template": "plain", "think_prefill": False}, "preset": preset, "num_rollouts": 1,
        "rollout": {"prompts_per_step": 4, "group_size": 4, "max_new_tokens": 6},
        "rewards": [{"name": "share_of_a"}],
        "train": {"out_dir": str(out_dir), "grad_accum": 2, "lr": 1e-2, "schedule": "constant", "progress": False,
                  "tensorboard": False, "dist": {"strategy": strategy}}})
    model = tiny_moe(len(tok))
    result = rl(cfg, model=model, tokenizer=tok, records=rl_records(), sampler=PromptHashSampler(tok),
                reward_fns={"share_of_a": share_of_a})
    return result, model


def moe_batch(vocab_size: int, rows: int = 4, length: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows and a fixed projection `R [V]`: the loss Σ_rows Σ_t logits·R is additive over rows."""
    g = torch.Generator().manual_seed(7)
    return torch.randint(2, vocab_size, (rows, length), generator=g), torch.randn(vocab_size, generator=g)


def moe_step(model: Transformer, ids: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """Forward + backward of the additive loss; returns the logits `[B,T,V]` (detached)."""
    out = model(ids)
    (out.logits * proj).sum().backward()
    return out.logits.detach()


# ----- launching -----
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(scenario: str, out_dir: Path, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --nproc_per_node N` on dist_worker.py; raises with its output on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           str(HERE / "dist_worker.py"), scenario, str(out_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"torchrun {scenario} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc
