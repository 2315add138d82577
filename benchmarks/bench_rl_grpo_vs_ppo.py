"""GRPO vs PPO on the same task, model and rollout budget: peak memory and optimizer-step time.

GRPO's claim (DeepSeekMath §4): dropping the critic saves a model-sized network, its gradients and its AdamW
state, and the critic's forward/backward each step. Each method runs in its own child process (so peak
memory is its own) on an r1lab `tiny` DeepSeek-V3 policy with identical rollout settings; the parent prints
PPO / GRPO ratios. Memory: peak RSS growth during training on CPU (ru_maxrss minus RSS before training), or
torch.cuda.max_memory_allocated on GPU. Time: mean optimizer-step wall time (rollout generation included,
first step excluded as warm-up), and the training part alone (step time minus rollout time).
On CPU each child uses one torch thread.
Run: .venv/bin/python benchmarks/bench_rl_grpo_vs_ppo.py
Needs: the base install only (`make setup`; no extra).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile

ROLLOUTS = 4


def digits_share(completions, **_):
    return [sum(ch.isdigit() for ch in t) / max(len(t), 1) for t in completions]


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(method: str) -> None:
    import torch

    from r1lab.data import load_task
    from r1lab.data.tokenizer import train_tokenizer
    from r1lab.model import ModelConfig, Transformer
    from r1lab.train.rl import RLConfig, rl

    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # the CPU is shared: extra OpenMP threads only spin against other processes
    torch.manual_seed(0)
    records = load_task("arith", "train", 64, 0)
    tok = train_tokenizer([r["prompt"] + " " + r["answer"] for r in records] * 4, vocab_size=300)
    model = Transformer(ModelConfig.from_preset("tiny", vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                                eos_token_id=tok.eos_token_id, mtp_depth=0))
    cfg = RLConfig.model_validate({
        "data": {"template": "plain"}, "preset": method, "num_rollouts": ROLLOUTS,
        "rollout": {"prompts_per_step": 8, "group_size": 4, "max_new_tokens": 32},
        "rewards": [{"name": "digits_share"}],
        "train": {"out_dir": tempfile.mkdtemp(prefix=f"bench_{method}_"), "lr": 1e-4, "progress": False,
                  "tensorboard": False, "save_every": 0},
    })
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = current_rss_bytes()
    res = rl(cfg, model=model, tokenizer=tok, records=records, reward_fns={"digits_share": digits_share})
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    steps = res.history[1:]
    step = sum(h["step_time_s"] for h in steps) / len(steps)
    train_only = sum(h["step_time_s"] - h["time/rollout_s"] for h in steps) / len(steps)
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"method": method, "peak_bytes": peak, "step_s": step, "train_s": train_only,
                      "policy_params": n_params, "device": "cuda" if cuda else "cpu",
                      "reward_first": res.history[0]["reward"], "reward_last": res.history[-1]["reward"]}))


def main() -> None:
    results = {}
    for method in ("r1", "ppo"):
        out = subprocess.run([sys.executable, __file__], env={**os.environ, "BENCH_RL_CHILD": method},
                             capture_output=True, text=True, check=True)
        results[method] = json.loads(out.stdout.strip().splitlines()[-1])
    g, p = results["r1"], results["ppo"]
    print(f"device {g['device']}, policy {g['policy_params']:,} parameters, {ROLLOUTS} rollouts of 8 x 4 completions")
    for name, r in (("GRPO (r1)", g), ("PPO", p)):
        print(f"{name:10s} peak memory {r['peak_bytes'] / 2**20:8.1f} MiB   step {r['step_s']:.3f} s   "
              f"training part {r['train_s']:.3f} s")
    print(f"RESULT rl_ppo_over_grpo_peak_memory {p['peak_bytes'] / g['peak_bytes']:.3f}")
    print(f"RESULT rl_ppo_over_grpo_step_time {p['step_s'] / g['step_s']:.3f}")
    print(f"RESULT rl_ppo_over_grpo_train_time {p['train_s'] / g['train_s']:.3f}")
    print(f"RESULT rl_grpo_peak_memory_mib {g['peak_bytes'] / 2**20:.1f}")
    print(f"RESULT rl_ppo_peak_memory_mib {p['peak_bytes'] / 2**20:.1f}")


if __name__ == "__main__":
    if os.environ.get("BENCH_RL_CHILD"):
        child(os.environ["BENCH_RL_CHILD"])
    else:
        main()
