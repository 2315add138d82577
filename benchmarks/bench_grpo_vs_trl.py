"""GRPO step time: r1lab's RL stage vs TRL's GRPOTrainer on the same configuration, side by side.

Configuration (both): SmolLM2-135M-Instruct (the `smollm2-135m` source's cached HF directory, offline), the
task of configs/smollm2_grpo.yaml rendered with the chat template and `<think>\\n` prefilled, 2 prompts x
8 completions per step, at most 48 new tokens, temperature 1, beta 0.04 (reference model on), mu 1 (one
optimizer step per generation batch), lr 1e-5 (constant), AdamW betas (0.9, 0.999) with torch's fused kernel
(TRL's default through transformers' `optim="adamw_torch_fused"` on torch>=2.8; r1lab's `train.adamw_impl:
fused`; the kernel each side used is printed), grad-norm clip 1.0, the
same reward function (that config's rewards, `bench_reward`: last-number accuracy + 0.25 x format_soft) and TRL's default objective
(`loss_type="dapo"`, group-scaled advantages, KL bias correction), which r1lab runs as
`trl_objective(beta=0.04)` (tests/smol/test_smol_trl_parity.py checks the two losses agree).

Both trainers run at both precisions, each pair like with like:
- bf16 mixed precision, TRL's default (`GRPOConfig.bf16` defaults to True; accelerate's bf16 autocast of the
  model's forward passes); r1lab runs with `train.precision=bf16`, which autocasts the policy
  forward/backward and the reference pass and samples with the engine in bf16 (`rollout.dtype: auto`).
  Master weights, gradients and AdamW stay fp32 on both sides.  -> RESULT grpo_speedup_vs_trl
- fp32 everywhere (`bf16=False` / `train.precision=fp32`).      -> RESULT grpo_speedup_vs_trl_fp32

Each trainer runs in its own child process with the same torch thread count (default 1: on a shared CPU more
OpenMP threads than free cores spin against other processes and make both sides noisy), takes WARMUP steps
that are not timed, then STEPS timed steps. A step is everything between two optimizer steps: generation,
rewards, reference and policy log-probs, backward, clipping, AdamW. TRL is timed by a TrainerCallback
(on_step_end to on_step_end); r1lab by its loop's `step_time_s`. Both see the same two prompts at each step (TRL
gets the dataset in r1lab's visiting order, unshuffled); completion lengths still differ with the samplers'
random draws, so the mean completion length is printed next to each time.

For GPU machines without SmolLM2's weights (`make gpu-check`): `R1LAB_BENCH_MODEL=random` gives both trainers the same
randomly initialised Llama of SmolLM2-135M's exact configuration (vocabulary included: a character-level tokenizer
padded with filler tokens to 49,152 entries, with r1lab's chat template), and `R1LAB_BENCH_DEVICE=cuda` trains on
the GPU (TRL without `use_cpu`, r1lab with `train.device: cuda`). Random policies rarely emit EOS, so both sides
generate the full 48 tokens: the same work per step.

Run: .venv/bin/python benchmarks/bench_grpo_vs_trl.py
Needs: pip install 'r1lab[bench,smollm2]' (`make bench` installs both).
Env: R1LAB_BENCH_STEPS (timed steps, 5), R1LAB_BENCH_WARMUP (1), R1LAB_BENCH_THREADS (1),
R1LAB_BENCH_MODEL (smollm2 | random), R1LAB_BENCH_DEVICE (cpu | cuda).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"  # nothing may come from the hub: the model is the converted local directory
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPTS, G, MAX_NEW, TEMPERATURE, BETA, MU, LR = 2, 8, 48, 1.0, 0.04, 1, 1e-5
STEPS = int(os.environ.get("R1LAB_BENCH_STEPS", "5"))
WARMUP = int(os.environ.get("R1LAB_BENCH_WARMUP", "1"))
THREADS = int(os.environ.get("R1LAB_BENCH_THREADS", "1"))
N_RECORDS = 64
MODEL = os.environ.get("R1LAB_BENCH_MODEL", "smollm2")
DEVICE = os.environ.get("R1LAB_BENCH_DEVICE", "cpu")
# SmolLM2-135M-Instruct's configuration (its config.json), for the randomly initialised stand-in
SMOLLM2_SHAPE = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
                     rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu")


def random_smollm2_dir(root: str) -> str:
    """A randomly initialised Llama of SmolLM2-135M's shape and a tokenizer of the same vocabulary size, saved as
    an HF directory both trainers load (no download, no weights needed)."""
    import string

    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from r1lab.data.tokenizer import CHAT_TEMPLATE

    path = os.path.join(root, "random-smollm2-shape")
    if os.path.isdir(path):
        return path
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    chars = sorted(set(string.printable))
    vocab = {t: i for i, t in enumerate(specials + chars)}
    for i in range(len(vocab), SMOLLM2_SHAPE["vocab_size"]):
        vocab[f"<filler{i}>"] = i
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<|im_start|>", additional_special_tokens=specials)
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(**SMOLLM2_SHAPE, bos_token_id=vocab["<|im_start|>"], eos_token_id=vocab["<|im_end|>"],
                         pad_token_id=vocab["<|endoftext|>"])
    LlamaForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def model_dir(root: str) -> str:
    if MODEL == "random":
        return random_smollm2_dir(root)
    from r1lab.sources import smollm2_dir

    return str(smollm2_dir())


CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "configs", "smollm2_grpo.yaml")


def recipe():
    """configs/smollm2_grpo.yaml, the RL-only SmolLM2 recipe: its task and rewards are what both trainers use."""
    from r1lab.config import read_yaml, validate
    from r1lab.train.rl import RLConfig

    return validate(RLConfig, read_yaml(CONFIG), CONFIG)


def load_records() -> list[dict]:
    from r1lab.data import load_task

    return load_task(recipe().data.task, "train", N_RECORDS, 0)


def bench_reward():
    """The config's weighted rewards as ONE function both trainers call: r1lab passes `metadata` as records hold
    it, TRL the dataset's `metadata_json` column (Arrow cannot hold reasoning-gym's mixed metadata dicts)."""
    from r1lab.rewards.spec import build_reward

    combined = build_reward(recipe().rewards)

    def bench_reward(completions, metadata=None, metadata_json=None, **columns):
        if metadata is None and metadata_json is not None:
            metadata = [json.loads(m) for m in metadata_json]
        return [v or 0.0 for v in combined(completions, metadata=metadata, **columns)]

    return bench_reward


def r1lab_visiting_order(records: list[dict]) -> list[dict]:
    """The records in the order r1lab's RL stage visits them (data.seed 0, first epoch), so that both trainers
    spend step k on the same prompts: completion lengths, and with them step times, depend on the prompt."""
    import torch

    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(0))
    return [records[int(i)] for i in order]


def run_trl(out_dir: str, bf16: bool = False) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from r1lab.data import get_template

    path = model_dir(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    template = get_template("chat")
    rows = [{"prompt": template.render(r["prompt"], tokenizer), "answer": str(r["answer"]), "task": r["task"],
             "metadata_json": json.dumps(r["metadata"]), "prefill": template.prefill} for r in r1lab_visiting_order(load_records())]

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.marks: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

    timer = StepTimer()
    args = GRPOConfig(
        output_dir=out_dir, per_device_train_batch_size=PROMPTS * G,
        num_generations=G, max_completion_length=MAX_NEW, temperature=TEMPERATURE, beta=BETA,
        num_iterations=MU, learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        adam_beta1=0.9, adam_beta2=0.999, max_grad_norm=1.0, max_steps=WARMUP + STEPS, gradient_accumulation_steps=1,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=DEVICE == "cpu", bf16=bf16, seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0, shuffle_dataset=False,  # r1lab's prompt order (see r1lab_visiting_order)
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[bench_reward()], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer, callbacks=[timer])
    trainer.train()
    times = [b - a for a, b in zip(timer.marks, timer.marks[1:])]
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    return {"times": times[WARMUP:], "lengths": [h["completions/mean_length"] for h in logs][WARMUP:],
            "rewards": [h.get("reward") for h in logs][WARMUP:], "optimizer": adamw_kernel(trainer.optimizer)}


def adamw_kernel(optimizer) -> str:
    """'AdamW fused' / 'AdamW foreach' / ... for the torch optimizer inside accelerate's wrapper."""
    inner = getattr(optimizer, "optimizer", optimizer)
    d = inner.defaults
    kind = "fused" if d.get("fused") else "foreach" if d.get("foreach") in (None, True) else "for-loop"
    return f"{type(inner).__name__} {kind}"


def run_r1lab(out_dir: str, precision: str = "fp32") -> dict:
    from r1lab.recipe.trl_objective import trl_objective
    from r1lab.train.rl import RLConfig, rl

    cfg = RLConfig.model_validate({
        "model": {"init_from": model_dir(out_dir)},
        "data": {"template": "chat", "size": N_RECORDS},
        "rollout": {"prompts_per_step": PROMPTS, "group_size": G, "max_new_tokens": MAX_NEW,
                    "temperature": TEMPERATURE},
        "rewards": [{"name": "bench_reward"}],
        **trl_objective(beta=BETA, mu=MU),
        "train": {"out_dir": out_dir, "lr": LR, "schedule": "constant",
                  "betas": [0.9, 0.999], "max_grad_norm": 1.0, "max_steps": WARMUP + STEPS, "progress": False,
                  "tensorboard": False, "entropy_floor": None, "precision": precision, "adamw_impl": "fused",
                  "device": DEVICE},
    })
    res = rl(cfg, records=load_records(), reward_fns={"bench_reward": bench_reward()})
    hist = res.history[WARMUP:]
    return {"times": [h["step_time_s"] for h in hist], "lengths": [h["completions/mean_length"] for h in hist],
            "rewards": [h.get("reward") for h in hist],
            "generation_s": [h.get("time/generation_s") for h in hist], "optimizer": f"AdamW {cfg.train.adamw_impl}"}


def child(which: str) -> None:
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench_grpo_") as out_dir:  # checkpoints (1.6 GB for r1lab) go with it
        if which.startswith("trl"):
            out = run_trl(out_dir, bf16=which == "trl-bf16")
        else:
            out = run_r1lab(out_dir, "bf16" if which == "r1lab-bf16" else "fp32")
    print("BENCH_JSON " + json.dumps(out), flush=True)


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def spawn(which: str) -> dict:
    before = load_average()
    proc = subprocess.run([sys.executable, __file__, "--child", which], capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
        raise SystemExit(f"{which} child failed (exit {proc.returncode})")
    out = json.loads(line[len("BENCH_JSON "):])
    out["load"] = f"{before} -> {load_average()}"
    return out


def main() -> None:
    model = "SmolLM2-135M-Instruct" if MODEL != "random" else "a random-init model of SmolLM2-135M's shape"
    print(f"GRPO step, {model} on {DEVICE}, {PROMPTS} prompts x {G} completions, <= {MAX_NEW} new tokens, "
          f"T={TEMPERATURE}, beta={BETA}, mu={MU}, lr={LR}; {WARMUP} warm-up + {STEPS} timed steps; "
          f"torch threads {THREADS}; cores {os.cpu_count()}")
    results = {name: spawn(name) for name in ("trl-bf16", "r1lab-bf16", "trl", "r1lab")}
    print(f"{'trainer':11} {'s/step (median)':>16} {'mean':>8} {'steps':>6} {'mean completion len':>20}  "
          f"{'optimizer':14} load avg (1/5/15 min)")
    for name, r in results.items():
        lengths = [x for x in r["lengths"] if x is not None]
        print(f"{name:11} {statistics.median(r['times']):16.2f} {statistics.mean(r['times']):8.2f} {len(r['times']):6d} "
              f"{statistics.mean(lengths) if lengths else float('nan'):20.1f}  {r['optimizer']:14} {r['load']}")
    for name in ("r1lab-bf16", "r1lab"):
        gen = [x for x in results[name].get("generation_s", []) if x is not None]
        if gen:
            print(f"{name} generation share: {statistics.mean(gen):.2f} s of {statistics.mean(results[name]['times']):.2f} s")

    def speedup(trl: str, ours: str) -> float:
        return statistics.median(results[trl]["times"]) / statistics.median(results[ours]["times"])

    tag = "grpo_gpu_speedup_vs_trl" if DEVICE == "cuda" else "grpo_speedup_vs_trl"
    print(f"RESULT {tag} {speedup('trl-bf16', 'r1lab-bf16'):.2f}")
    print(f"RESULT {tag}_fp32 {speedup('trl', 'r1lab'):.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
