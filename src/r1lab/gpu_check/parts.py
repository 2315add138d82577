"""The parts of `make gpu-check`, in the order they run, each with its time limit (the default set fits in five
minutes on one H100). `PARTS=a,b` picks any subset; `pipeline` (the whole tiny recipe on CUDA) is not a default."""

from __future__ import annotations

from r1lab.gpu_check.runner import Part

ENV_REPORT = (
    "import torch; c = torch.cuda.is_available(); "
    "print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPU', "
    "torch.cuda.get_device_name(0) if c else 'none'); "
    "print('RESULT cuda_devices', torch.cuda.device_count())"
)

PARTS: tuple[Part, ...] = (
    Part("env", ("{python}", "-c", ENV_REPORT), 60, needs_cuda=False,
         doc="torch, CUDA and GPU names"),
    Part("gpu_tests", ("{python}", "-m", "pytest", "-q", "-m", "gpu", "-p", "no:randomly", "-p", "no:cacheprovider",
                       "tests"), 150,
         doc="the tests marked gpu: V3 forward/backward, greedy decoding, a training step and checkpoints, CUDA vs CPU"),
    Part("fp8", ("{python}", "benchmarks/gpu_fp8_check.py"), 120,
         doc="block-scaled torch._scaled_mm against the CPU emulation, and its speed against BF16"),
    Part("nccl", ("{python}", "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
                  "--master_port", "29517", "tests/dist/dist_worker.py", "sft:ddp,sft:fsdp,rl:r1", "{out}"), 120,
         env=(("PYTHONPATH", "tests/dist"),),
         doc="data-parallel and FSDP2 training steps with the NCCL backend under torchrun (one GPU)"),
    Part("smoke", ("{python}", "-m", "r1lab.cli", "run", "configs/smoke.yaml", "--out", "{out}/run"), 150,
         doc="every stage of the recipe on CUDA (configs/smoke.yaml)"),
    Part("grpo_vs_trl", ("{python}", "benchmarks/bench_grpo_vs_trl.py"), 240,
         env=(("R1LAB_BENCH_MODEL", "random"), ("R1LAB_BENCH_DEVICE", "cuda"), ("R1LAB_BENCH_STEPS", "3")),
         doc="GRPO step time, r1lab vs TRL's GRPOTrainer, on a randomly initialised model of SmolLM2-135M's shape"),
    Part("mla_decode", ("{python}", "benchmarks/bench_mla_decode.py"), 120,
         doc="MLA decode step, absorbed vs naive, one attention layer of V3's shape, batch 8, 1k and 8k context"),
    Part("pipeline", ("{python}", "-m", "r1lab.gpu_check.pipeline", "{out}"), 600, default=False,
         doc="the whole tiny recipe (configs/tiny.yaml) on CUDA: minutes and headline figures"),
)
