"""``model.dtype=auto`` and ``mixed_precision=auto`` follow the hardware (torch's own CPU capability answer)."""

from __future__ import annotations

import torch

from verireason import precision
from verireason.models import torch_dtype


def test_auto_is_bf16_on_a_bf16_cpu_and_fp32_elsewhere(monkeypatch):
    monkeypatch.delenv("VERIREASON_CPU_BF16", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert torch_dtype("auto", "cpu") == torch.bfloat16 and precision.mixed_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert torch_dtype("auto", "cpu") == torch.float32 and precision.mixed_precision("auto", "cpu") == "no"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert torch_dtype("auto", "cpu") == torch.bfloat16
    assert torch_dtype("auto", "cuda") == torch.bfloat16 and torch_dtype("float32", "cpu") == torch.float32


def test_the_environment_forces_the_cpu_answer(monkeypatch):
    monkeypatch.setenv("VERIREASON_CPU_BF16", "0")
    assert torch_dtype("auto", "cpu") == torch.float32 and precision.mixed_precision("auto", "cpu") == "no"
    monkeypatch.setenv("VERIREASON_CPU_BF16", "1")
    assert precision.mixed_precision("auto", "cpu") == "bf16" and precision.mixed_precision("no", "cpu") == "no"


def test_training_under_autocast_keeps_fp32_weights_and_fp32_log_probs(tiny_model_dir, monkeypatch):
    from verireason.collate import rollouts_to_batch
    from verireason.models import load_causal_lm, load_tokenizer
    from verireason.records import Rollout
    from verireason.trainer import Learner, build_accelerator

    monkeypatch.setenv("VERIREASON_CPU_BF16", "1")
    model = load_causal_lm(str(tiny_model_dir), "float32", "cpu").train()
    learner = Learner(build_accelerator("cpu"), model, load_tokenizer(str(tiny_model_dir)), lr=1e-3,
                      weight_decay=0.0, warmup_steps=0, grad_clip=1.0, micro_batch_size=4, mixed_precision="auto")
    assert learner.bf16
    rollouts = [Rollout("generate", f"g{i // 2}", "", "", (3, 4, 5), (6, 7, 8, 9), float(i % 2), "stop")
                for i in range(4)]
    batch = rollouts_to_batch(rollouts, [0.0] * 4, learner.pad_id)
    with learner.autocast():
        logits = learner._logits(learner.model, batch)
    assert logits.dtype == torch.float32  # the logits are cast back before any log-softmax
    hot = learner.logprobs(rollouts)
    stats = learner.update(rollouts)
    assert all(p.dtype == torch.float32 for p in learner.model.parameters()) and stats["grad_norm"] > 0
    fp32 = Learner(build_accelerator("cpu"), load_causal_lm(str(tiny_model_dir), "float32", "cpu").train(),
                   load_tokenizer(str(tiny_model_dir)), lr=1e-3, weight_decay=0.0, warmup_steps=0, grad_clip=1.0,
                   micro_batch_size=4)
    cold = fp32.logprobs(rollouts)
    diff = max(float((a - b).abs().max()) for a, b in zip(hot, cold))
    assert 0 < diff < 0.5  # bf16 compute differs a little, not wildly (measured sizes: docs/benchmarks.md)
