"""The GPU path against the CPU: the V3 model's forward and backward, greedy decoding through the engine, one
training step of the shared loop and a checkpoint round trip give the CPU's results on CUDA.

Marked `gpu` (what `make gpu-check` runs). Without CUDA the same tests run with the CPU as the "device", so the
code paths are exercised in `make test` too; only a CUDA machine makes the comparison a statement about CUDA.
TF32 is switched off so that CUDA matmuls are fp32 like the CPU's.
"""

from __future__ import annotations

import copy

import pytest
import torch

from r1lab.engine import SamplingParams, make_sampler
from r1lab.model import ModelConfig, Transformer
from r1lab.train import FunctionStage, TrainConfig, train

pytestmark = pytest.mark.gpu
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
RTOL = 1e-4  # fp32 on both sides; summation order differs between devices


@pytest.fixture(autouse=True)
def fp32_matmuls():
    if DEVICE.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def tiny_v3(seed: int = 0, **over) -> Transformer:
    """MLA with a query LoRA, one dense and one MoE layer (4 routed experts in 2 groups, 2 active), one MTP depth."""
    torch.manual_seed(seed)
    cfg = ModelConfig.from_preset(
        "tiny", vocab_size=64, dim=32, n_layers=2, n_dense_layers=1, inter_dim=64, n_heads=2, q_lora_rank=16,
        kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, moe_inter_dim=16,
        n_routed_experts=4, n_activated_experts=2, n_expert_groups=2, n_limited_groups=1, mtp_depth=1,
        max_seq_len=64, original_seq_len=64, pad_token_id=0, eos_token_id=1, **over)
    return Transformer(cfg)


def close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    scale = max(float(b.abs().max()), 1e-12)
    diff = float((a - b).abs().max())
    assert diff <= RTOL * scale, f"{what}: max |difference| {diff:.3g} against scale {scale:.3g} ({DEVICE})"


def ids(batch: int = 3, length: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randint(2, 64, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_v3_forward_backward_on_the_device_equals_the_cpu():
    cpu = tiny_v3()
    dev = copy.deepcopy(cpu).to(DEVICE)
    x = ids()
    out_cpu = cpu(x, labels=x)
    out_dev = dev(x.to(DEVICE), labels=x.to(DEVICE))
    close(out_dev.logits, out_cpu.logits, "logits (naive MLA)")
    close(out_dev.loss, out_cpu.loss, "loss (main + MTP + balance)")
    # MoE routing identical: the same experts chose the same tokens
    for a, b in zip(dev.routing_stats(), cpu.routing_stats()):
        assert a["load"] == b["load"], f"expert loads differ on layer {a['layer']}"
    out_cpu.loss.backward()
    out_dev.loss.backward()
    for (name, p_cpu), (_, p_dev) in zip(cpu.named_parameters(), dev.named_parameters()):
        if p_cpu.grad is not None:
            close(p_dev.grad, p_cpu.grad, f"gradient of {name}")


def test_absorbed_decoding_on_the_device_equals_the_naive_cpu_forward():
    """The compressed-cache (absorbed MLA) decode path on the device gives the full naive forward's logits."""
    cpu = tiny_v3().eval()
    dev = copy.deepcopy(cpu).to(DEVICE).eval()
    x = ids(batch=2, length=10)
    with torch.no_grad():
        full = cpu(x).logits  # naive form, whole sequence
        cache = dev.new_cache(2, 16)
        steps = []
        for t in range(x.shape[1]):
            pos = torch.full((2, 1), t, device=DEVICE)
            steps.append(dev(x[:, t:t + 1].to(DEVICE), cache=cache, positions=pos).logits)
    close(torch.cat(steps, dim=1), full, "logits of absorbed decoding vs naive forward")


def test_greedy_decoding_on_the_device_gives_the_cpu_tokens():
    cpu = tiny_v3(seed=3).eval()
    dev = copy.deepcopy(cpu).to(DEVICE).eval()
    prompts = [[2, 5, 9, 4], [7, 3], [11, 12, 13, 14, 15]]
    params = SamplingParams(n=1, max_new_tokens=12, temperature=0.0, seed=0)
    a = make_sampler(cpu).generate(prompts, params)
    b = make_sampler(dev).generate(prompts, params)
    assert [c[0].token_ids for c in a] == [c[0].token_ids for c in b]


def test_one_training_step_on_the_device_matches_the_cpu(tmp_path):
    x = ids(batch=4, length=16, seed=5)

    def step(device: str):
        model = tiny_v3(seed=7)
        cfg = TrainConfig(out_dir=str(tmp_path / device), max_steps=1, lr=1e-2, schedule="constant", device=device,
                          progress=False, tensorboard=False, seed=0)
        stage = FunctionStage(lambda s, m: x, lambda mdl, b: (mdl(b.to(next(mdl.parameters()).device),
                                                                  labels=b.to(next(mdl.parameters()).device)).loss, {}))
        result = train(model, stage, cfg)
        return result, {k: v.detach().cpu() for k, v in model.state_dict().items()}

    res_cpu, w_cpu = step("cpu")
    res_dev, w_dev = step(DEVICE.type)
    close(torch.tensor(res_dev.metrics["loss"]), torch.tensor(res_cpu.metrics["loss"]), "loss of the step")
    for k in w_cpu:
        if w_cpu[k].is_floating_point():
            close(w_dev[k], w_cpu[k], f"updated {k}")


def test_a_checkpoint_saved_from_the_device_loads_on_the_cpu_and_back(tmp_path):
    dev = tiny_v3(seed=11).to(DEVICE).eval()
    dev.save_pretrained(tmp_path / "ckpt")
    cpu = Transformer.from_pretrained(tmp_path / "ckpt")
    for (k, a), (_, b) in zip(dev.state_dict().items(), cpu.state_dict().items()):
        assert torch.equal(a.cpu(), b), k
    back = Transformer.from_pretrained(tmp_path / "ckpt", device=DEVICE).eval()
    x = ids(seed=2)
    with torch.no_grad():
        close(back(x.to(DEVICE)).logits, cpu.eval()(x).logits, "logits after the round trip")
