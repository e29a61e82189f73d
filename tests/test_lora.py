"""LoRA (verireason.adapters): the initial model is the policy with its adapters off, a step trains only the
adapters, the merged weights are the adapted model, and every training command runs, checkpoints and resumes with
``lora.rank`` set, loading the model once."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tests.test_paper2_commands import STV, VIL
from tests.test_rl import SMALL, metrics, toy_args, untimed, weights
from verireason.adapters import AdaptersOff, apply_lora, full_state_dict
from verireason.cli import app
from verireason.config import LoraCfg

runner = CliRunner()
LORA = ["lora.rank=4", "lora.alpha=8"]


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    from tests.conftest import write_toy_bench

    folder = tmp_path_factory.mktemp("toy-lora")
    write_toy_bench(folder / "toy.jsonl", 16)
    return folder


def _adapted(model_dir, seed: int = 0):
    """The tiny model with rank-4 adapters whose B is random (fresh adapters are exactly zero: B = 0)."""
    from verireason.models import load_causal_lm

    policy = apply_lora(load_causal_lm(str(model_dir), "float32").train(), LoraCfg(rank=4, alpha=8))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    return policy


def _logits(model, ids):
    return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def test_adapters_off_is_the_base_model_and_leaves_the_policy_as_it_was(tiny_model_dir):
    from verireason.models import load_causal_lm

    base = load_causal_lm(str(tiny_model_dir), "float32").eval()
    policy = _adapted(tiny_model_dir)
    ids = torch.randint(4, 200, (3, 17))
    with torch.no_grad():
        expected, adapted = _logits(base, ids), _logits(policy, ids)
    off = AdaptersOff(policy).to("cpu").train(False).requires_grad_(False)  # no-ops on the shared weights
    assert policy.training and any(p.requires_grad for p in policy.parameters())
    assert torch.allclose(_logits(off, ids), expected, atol=1e-6)
    assert not torch.allclose(adapted, expected, atol=1e-3)  # the adapters do change the output
    assert policy.training  # the view ran in eval mode and restored the policy's


def test_merged_weights_are_the_adapted_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    policy = _adapted(tiny_model_dir)
    merged = full_state_dict(policy)
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert set(merged) == {n for n, _ in plain.named_parameters()}  # the base model's own names, nothing else
    plain.load_state_dict(merged, strict=False)
    ids = torch.randint(4, 200, (2, 11))
    policy.eval()
    with torch.no_grad():
        assert torch.allclose(_logits(plain.eval(), ids), _logits(policy, ids), atol=1e-5)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    full_state_dict(policy)
    assert all(torch.equal(before[n], p) for n, p in policy.named_parameters())  # merging touched nothing


def test_a_lora_step_changes_only_adapter_weights(tiny_model_dir):
    from verireason.models import load_tokenizer
    from verireason.records import Rollout
    from verireason.trainer import Learner, build_accelerator

    policy = _adapted(tiny_model_dir)
    learner = Learner(build_accelerator("cpu"), policy, load_tokenizer(str(tiny_model_dir)), lr=1e-2,
                      weight_decay=0.0, warmup_steps=0, grad_clip=1.0, micro_batch_size=2)
    held = {id(p) for group in learner.optimizer.param_groups for p in group["params"]}
    assert held == {id(p) for n, p in policy.named_parameters() if "lora_" in n}  # AdamW state for adapters only
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    rollouts = [Rollout("generate", "a", "", "", (3, 70, 71), (80 + i, 81, 2), float(i % 2), "stop") for i in range(4)]
    learner.update(rollouts)
    for name, p in policy.named_parameters():
        if "lora_" in name:
            continue
        assert torch.equal(before[name], p), name
    assert any(not torch.equal(before[n], p) for n, p in policy.named_parameters() if "lora_A" in n)


def _loads(monkeypatch) -> list[str]:
    """Record every model transformers loads (the policy and any frozen copy, wherever it is loaded from)."""
    from transformers import AutoModelForCausalLM

    calls: list[str] = []
    original = AutoModelForCausalLM.from_pretrained

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", counting)
    return calls


@pytest.mark.parametrize("command,extra", [
    ("rl-gen", ["algo.kl_coef=0.05", *SMALL, "trainer.probe_every=0"]),  # the KL reference: adapters off
    ("stv", ["--method", "stv", *STV]),  # the frozen teacher: adapters off
    ("vil", VIL),  # the default verifier: adapters off
])
def test_training_commands_with_lora_load_the_model_once(primed_model_dir, toy_dir, tmp_path, monkeypatch, command,
                                                         extra):
    calls = _loads(monkeypatch)
    run = tmp_path / "run"
    result = runner.invoke(app, [command, *toy_args(primed_model_dir, toy_dir, run), *extra, *LORA])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1, calls  # the policy; the initial model is the same weights with the adapters off
    ckpt = run / "checkpoints" / "step_000002"
    config = json.loads((ckpt / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8
    merged, initial = weights(ckpt), weights(primed_model_dir)
    assert set(merged) <= set(initial)  # a plain model: eval and asymmetry-probe load it as any checkpoint
    assert any(not torch.equal(merged[k], initial[k]) for k in merged), "the adapters did not train"
    rows = metrics(run)
    assert rows[-1]["step"] == 2


def test_sft_init_with_lora_and_kl(primed_model_dir, tmp_path, monkeypatch):
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Q{i}: 1 or 2?", "completion": "\\boxed{1}"}) + "\n"
                            for i in range(8)))
    calls = _loads(monkeypatch)
    out = tmp_path / "sft"
    result = runner.invoke(app, ["sft-init", "--model", str(primed_model_dir), "--data", str(data), "--out", str(out),
                                 "--steps", "2", "batch_size=4", "kl_coef=0.1", "optim.lr=1e-2",
                                 "optim.warmup_steps=0", "device=cpu", "progress=false", *LORA])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1, calls
    rows = metrics(out)
    assert rows[0]["sft/kl"] == pytest.approx(0.0, abs=1e-7) and rows[1]["sft/kl"] > 0  # KL to adapters-off
    assert (out / "checkpoints" / "step_000002" / "adapter" / "adapter_model.safetensors").is_file()


def test_lora_run_resumes_step_for_step_and_eval_loads_its_checkpoint(primed_model_dir, toy_dir, tmp_path,
                                                                      monkeypatch):
    from verireason.papers import self_verify as schedules

    common = [*SMALL, "trainer.eval_every=0", "trainer.probe_every=0", "algo.kl_coef=0.05", *LORA]
    whole = runner.invoke(app, ["rl-gen", *toy_args(primed_model_dir, toy_dir, tmp_path / "whole", 4), *common])
    assert whole.exit_code == 0, whole.output
    original = schedules.SCHEDULES["generate"]

    def dies_at_step_3(schedule, obj, step, timer):
        if step == 3:
            raise KeyboardInterrupt
        return original(schedule, obj, step, timer)

    monkeypatch.setitem(schedules.SCHEDULES, "generate", dies_at_step_3)
    cut = runner.invoke(app, ["rl-gen", *toy_args(primed_model_dir, toy_dir, tmp_path / "cut", 4), *common])
    assert cut.exit_code == 130
    monkeypatch.setitem(schedules.SCHEDULES, "generate", original)
    resumed = runner.invoke(app, ["rl-gen", *toy_args(primed_model_dir, toy_dir, tmp_path / "cut", 4), *common,
                                  "--resume"])
    assert resumed.exit_code == 0, resumed.output
    for a, b in zip(untimed(tmp_path / "whole"), untimed(tmp_path / "cut")):
        for key in a:
            same = a[key] is None and b[key] is None or a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6)
            assert same, (a["step"], key, a[key], b[key])
    last = "checkpoints/step_000004"
    a, b = weights(tmp_path / "whole" / last), weights(tmp_path / "cut" / last)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    evaluated = runner.invoke(app, ["eval", "--model", str(tmp_path / "whole" / last), "--bench", "custom",
                                    "--data-dir", str(toy_dir), "bench.custom.file=toy.jsonl", "--limit", "2",
                                    "sampling.n=1", "sampling.max_tokens=8", "engine=hf", "progress=false",
                                    "--out", str(tmp_path / "eval")])
    assert evaluated.exit_code == 0, evaluated.output


def test_resuming_a_full_run_with_lora_is_one_line(primed_model_dir, toy_dir, tmp_path):
    run = tmp_path / "full"
    common = [*SMALL, "trainer.eval_every=0", "trainer.probe_every=0"]
    assert runner.invoke(app, ["rl-gen", *toy_args(primed_model_dir, toy_dir, run, 2), *common]).exit_code == 0
    result = runner.invoke(app, ["rl-gen", *toy_args(primed_model_dir, toy_dir, run, 3), *common, *LORA, "--resume"])
    assert result.exit_code == 2 and "lora.rank=0" in result.output and "Traceback" not in result.output
