"""``verireason plan`` and its memory model (verireason.memory_plan): the shape's counts are the real model's, the
terms move the way the engine does, the command answers for every training command, and a training run on a GPU
that cannot fit is refused in one line."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from verireason.cli import app
from verireason.config import LoraCfg
from verireason.memory_plan import GPUS, Arch, Workload, cheapest_fix, make_plan, memory_terms

runner = CliRunner()


def test_parameter_counts_are_the_models(tiny_model_dir):
    from verireason.adapters import apply_lora
    from verireason.models import load_causal_lm

    arch = Arch.from_config(json.loads((tiny_model_dir / "config.json").read_text()))
    model = load_causal_lm(str(tiny_model_dir), "float32")
    assert arch.params == sum(p.numel() for p in model.parameters())
    lora = apply_lora(model, LoraCfg(rank=4))
    assert arch.lora_params(4, ("all-linear",)) == sum(p.numel() for p in lora.parameters() if p.requires_grad)


def test_the_stored_shapes_give_the_published_sizes():
    from verireason.config import compose, to_object
    from verireason.recipes.plan import arch_of

    sizes = {"qwen2.5-math-7b": 7.62e9, "llama-3.1-8b-instruct": 8.03e9, "qwen3-8b": 8.19e9, "smollm2-135m": 134.5e6}
    for alias, params in sizes.items():
        cfg = to_object(compose("rl-gen", [f"model={alias}"]))
        assert arch_of(cfg.model).params == pytest.approx(params, rel=0.01), alias


def _w(**kw) -> Workload:
    arch = Arch(hidden=3584, layers=28, intermediate=18944, heads=28, kv_heads=4, vocab=152064, tied=False)
    base = dict(command="rl-gen", arch=arch, micro_rows=4, micro_len=2048, completion=1024, engine="vllm",
                vllm_share=0.3)
    return Workload(**{**base, **kw})


def _term(w: Workload, name: str) -> float:
    return next(t.bytes for t in memory_terms(w, 80) if t.name == name)


def test_terms_move_as_the_engine_does():
    full, sharded = _w(), _w(sharding="fsdp2", world=8)
    for name in ("policy weights", "gradients", "AdamW m, v"):
        assert _term(sharded, name) == pytest.approx(_term(full, name) / 8)
    assert "FSDP2 replica" in {t.name for t in memory_terms(sharded, 80)}
    lora = _w(lora_rank=16, keeps_initial=True)
    assert _term(lora, "AdamW m, v") < _term(full, "AdamW m, v") / 100
    assert "frozen initial model" not in {t.name for t in memory_terms(lora, 80)}  # adapters off: no copy
    assert "frozen initial model" in {t.name for t in memory_terms(_w(keeps_initial=True), 80)}
    assert _term(_w(checkpointing=True), "activations") < _term(full, "activations") / 5
    assert _term(_w(micro_rows=2), "activations") == pytest.approx(_term(full, "activations") / 2)


def test_a_7b_run_on_one_gpu_gets_a_change_that_fits():
    w, gpu = _w(), GPUS["h100"]
    assert not make_plan(w, gpu).fits
    fix = cheapest_fix(w, gpu, 8)  # more GPUs before LoRA (LoRA changes the method)
    assert fix is not None and "8 GPUs" in fix and "trainer.sharding=fsdp2" in fix and "lora" not in fix
    assert make_plan(_w(sharding="fsdp2", world=8, checkpointing=True, micro_rows=1), gpu).fits
    assert not make_plan(_w(checkpointing=True, micro_rows=1), gpu).fits  # full fine-tuning cannot fit one GPU
    assert make_plan(_w(micro_rows=1, checkpointing=True, lora_rank=16), gpu).fits  # LoRA can


@pytest.mark.parametrize("args", [
    ["rl-gen", "--model", "qwen2.5-math-7b", "--gpus", "8"],
    ["rl-verify", "--model", "qwen2.5-7b-instruct", "--schedule", "verify_alter", "--gpus", "8", "lora.rank=32"],
    ["stv", "--model", "qwen2.5-math-7b", "--gpus", "1"],
    ["vil", "--model", "qwen3-8b", "--gpus", "8", "--nodes", "2", "trainer.sharding=fsdp2"],
    ["s2r", "--stage", "prl", "--model", "qwen2.5-math-7b", "--gpus", "8"],
    ["s2r", "--stage", "bi", "--model", "qwen2.5-math-7b", "--gpu", "h200"],
    ["sft-init", "--model", "smollm2-135m", "--gpu-memory", "24"],
])
def test_plan_answers_for_every_training_command(args):
    result = runner.invoke(app, ["plan", *args])
    assert result.exit_code == 0, result.output
    assert "| **total** |" in result.output and "verdict:" in result.output and "predicted step" in result.output
    assert "| fsdp2 |" in result.output and "| zero3 |" in result.output


@pytest.mark.parametrize("args,message", [
    (["eval"], "unknown command 'eval' to plan"),
    (["rl-gen", "--gpu", "tpu"], "unknown --gpu 'tpu'"),
    (["s2r", "--stage", "data"], "trains nothing"),
    (["rl-gen", "--model", "/nonexistent/dir"], "unknown model"),
])
def test_bad_plans_are_one_line(args, message):
    result = runner.invoke(app, ["plan", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_run_that_cannot_fit_the_gpu_is_refused_before_it_starts(monkeypatch, tmp_path):
    """On a (pretended) 24 GB GPU, full fine-tuning of a 7B model is refused in one line, before any run directory;
    ``trainer.check_memory=false`` goes ahead (here: to the next failure, the missing CUDA)."""
    class Props:
        total_memory = 24e9

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "pretend GPU")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    out = tmp_path / "run"
    result = runner.invoke(app, ["rl-gen", "--model", "qwen2.5-math-7b", "--bench", "arith", "--out", str(out),
                                 "engine=hf"])
    assert result.exit_code == 2 and "per GPU" in result.output and "trainer.check_memory=false" in result.output
    assert not out.exists()
    from verireason.recipes.plan import check_fits
    from verireason.config import compose

    check_fits("rl-gen", compose("rl-gen", ["model=qwen2.5-math-7b", "trainer.check_memory=false", "engine=hf"]))
    check_fits("rl-gen", compose("rl-gen", ["model=qwen2.5-math-1.5b", "engine=hf", "lora.rank=8",
                                            "trainer.gradient_checkpointing=true", "optim.micro_batch_size=1",
                                            "sampling.max_tokens=1024"]))  # fits 24 GB: no error
