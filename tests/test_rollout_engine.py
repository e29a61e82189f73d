"""Training's rollout engines: each sampled token's log-prob, the mismatch metrics and truncated importance
weights, and weight pushes into a colocated engine (a stand-in engine in the default suite; vLLM's own under
``pytest -m vllm``, on a GPU or vLLM's CPU build)."""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
import torch

from verireason.colocate import hf_name
from verireason.config import SamplingCfg
from verireason.generation import HFGenerator
from verireason.losses import pg_loss, tis_weights
from verireason.models import load_causal_lm, load_tokenizer
from verireason.records import Rollout
from verireason.trainer import Learner, build_accelerator

PROMPTS = ["<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n",
           "<|im_start|>user\nIs 2 right?<|im_end|>\n<|im_start|>assistant\n"]
GREEDY = SamplingCfg(n=1, temperature=0.0, max_tokens=12)


def make_learner(path, **kwargs) -> Learner:
    return Learner(build_accelerator("cpu"), load_causal_lm(str(path), "float32").train(), load_tokenizer(str(path)),
                   lr=kwargs.pop("lr", 1e-2), weight_decay=0.0, warmup_steps=0, grad_clip=1.0, micro_batch_size=4,
                   **kwargs)


def rollouts_of(learner: Learner, outputs, shift: float = 0.0) -> list[Rollout]:
    """Rollouts of ``outputs`` (one group per prompt, rewards 1, 0, 1, 0, …), their sampled log-probs moved by
    ``shift``."""
    out = []
    for prompt, completions in zip(PROMPTS, outputs):
        ids = tuple(learner.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        for k, c in enumerate(completions):
            logprobs = None if c.logprobs is None else tuple(x + shift for x in c.logprobs)
            out.append(Rollout("generate", prompt, prompt, c.text, ids, c.token_ids, float(k % 2 == 0),
                               c.finish_reason, sample_logprobs=logprobs))
    return out


def test_hf_engine_records_the_trainers_log_probs_of_the_raw_distribution(primed_model_dir):
    """At temperature 0.7 the sampled log-probs are the untempered ones the trainer computes (a tempered value
    would be off by far more than the tolerance)."""
    learner = make_learner(primed_model_dir)
    outputs = learner.generate(PROMPTS, SamplingCfg(n=3, temperature=0.7, max_tokens=12), seed=0)
    rollouts = rollouts_of(learner, outputs)
    trainer = learner.logprobs(rollouts)
    for rollout, mine in zip(rollouts, trainer):
        assert len(rollout.sample_logprobs) == len(rollout.completion_ids)
        assert torch.allclose(torch.tensor(rollout.sample_logprobs), mine, atol=1e-4)
    evaluation = HFGenerator.from_model(learner.model, learner.tokenizer)
    assert evaluation.generate(PROMPTS[:1], GREEDY, 0)[0][0].logprobs is None  # only training asks for them


def test_update_logs_the_mismatch_and_truncated_importance_weights_scale_the_loss(primed_model_dir):
    sampling = SamplingCfg(n=4, temperature=1.0, max_tokens=12)
    reference = make_learner(primed_model_dir)
    outputs = reference.generate(PROMPTS, sampling, seed=1)
    plain = reference.update(rollouts_of(reference, outputs))
    assert plain["logprob_diff"] < 1e-4 and plain["logprob_diff_frac"] == 0.0 and "tis_weight" not in plain

    moved = make_learner(primed_model_dir).update(rollouts_of(reference, outputs, shift=0.3))
    assert moved["logprob_diff"] == pytest.approx(0.3, abs=1e-3) and moved["logprob_diff_frac"] == 1.0
    assert moved["loss"] == pytest.approx(plain["loss"], rel=1e-4)  # measured, not corrected
    loose = make_learner(primed_model_dir, logprob_diff_threshold=0.5).update(rollouts_of(reference, outputs, 0.3))
    assert loose["logprob_diff_frac"] == 0.0

    # engine below the trainer by 0.5 nats: weight e^0.5 = 1.65, truncated at 1.2; above: e^-0.5, kept
    capped = make_learner(primed_model_dir, tis_cap=1.2).update(rollouts_of(reference, outputs, shift=-0.5))
    assert capped["tis_weight"] == pytest.approx(1.2, rel=1e-4)
    assert capped["loss"] == pytest.approx(1.2 * plain["loss"], rel=1e-3)
    low = make_learner(primed_model_dir, tis_cap=1.2).update(rollouts_of(reference, outputs, shift=0.5))
    assert low["tis_weight"] == pytest.approx(math.exp(-0.5), rel=1e-3)
    assert low["loss"] == pytest.approx(math.exp(-0.5) * plain["loss"], rel=1e-3)


def test_tis_weights_are_truncated_and_carry_no_gradient():
    old = torch.tensor([[-1.0, -2.0, -3.0]], requires_grad=True)
    sample = torch.tensor([[-1.0, -1.0, -4.0]])
    w = tis_weights(old, sample, cap=2.0)
    assert torch.allclose(w, torch.tensor([[1.0, math.exp(-1.0), 2.0]])) and not w.requires_grad
    logp = old.detach().clone().requires_grad_(True)
    loss, _ = pg_loss(logp, old.detach(), torch.tensor([1.0]), torch.ones(1, 3), weights=w)
    loss.backward()
    assert torch.allclose(logp.grad, -w / 3)  # d/dlogp of −A·ratio·w at ratio 1, token mean over 3


def test_wrapper_names_are_removed_from_pushed_parameters():
    assert hf_name("model.layers.0._fsdp_wrapped_module.mlp.up_proj.weight") == "model.layers.0.mlp.up_proj.weight"
    assert hf_name("module._orig_mod.model.norm.weight") == "model.norm.weight"
    assert hf_name("model.submodule.weight") == "model.submodule.weight"


class CopyEngine:
    """A stand-in for ``ColocatedVLLM`` with its contract: a separate copy of the model that changes only when
    the trainer pushes weights, awake only inside ``awake``."""

    def __init__(self, path):
        self.model = load_causal_lm(str(path), "float32").train(False)
        self.tokenizer = load_tokenizer(str(path))
        self.pushes = 0
        self.is_awake = False

    def push(self, named) -> int:
        assert self.is_awake, "weights pushed into a sleeping engine"
        state = {hf_name(n): t.detach().clone() for n, t in named}
        missing = set(dict(self.model.named_parameters())) - set(state)
        assert not missing, missing
        self.model.load_state_dict(state, strict=False)
        self.pushes += 1
        return len(state)

    @contextmanager
    def awake(self):
        self.is_awake = True
        try:
            yield HFGenerator.from_model(self.model, self.tokenizer, record_logprobs=True)
        finally:
            self.is_awake = False


def texts(outputs) -> list[str]:
    return [c.text for cs in outputs for c in cs]


def test_learner_pushes_weights_after_each_optimizer_step_before_the_next_rollout(tiny_model_dir, primed_model_dir):
    """The engine starts from other weights (the unprimed model): the first rollout pushes the policy, an update
    makes it stale, the next rollout pushes again; rollouts without an update in between push nothing."""
    engine = CopyEngine(tiny_model_dir)
    learner = make_learner(primed_model_dir, rollout_engine=engine, lr=5e-2)
    own = HFGenerator.from_model(learner.model, learner.tokenizer)
    with engine.awake() as unpushed:
        before_push = texts(unpushed.generate(PROMPTS, GREEDY, 0))
    first = texts(learner.generate(PROMPTS, GREEDY, 0))
    assert engine.pushes == 1 and first == texts(own.generate(PROMPTS, GREEDY, 0)) and first != before_push
    assert texts(learner.generate(PROMPTS, GREEDY, 0)) == first and engine.pushes == 1
    outputs = learner.generate(PROMPTS, SamplingCfg(n=4, temperature=1.0, max_tokens=12), seed=3)
    stats = learner.update(rollouts_of(learner, outputs))
    assert stats["logprob_diff"] < 1e-4  # the engine sampled from exactly the trainer's weights
    assert engine.pushes == 1 and learner.engine_stale
    after = texts(learner.generate(PROMPTS, GREEDY, 0))
    assert engine.pushes == 2 and after == texts(own.generate(PROMPTS, GREEDY, 0))
    for name, p in learner.model.named_parameters():
        assert torch.equal(dict(engine.model.named_parameters())[name], p.detach()), name
    with learner.engine(model=engine.model) as frozen:  # a frozen model (teacher, verifier) pushes nothing
        frozen.generate(PROMPTS, GREEDY, 0)
    assert engine.pushes == 2


@pytest.mark.vllm
def test_pushed_weights_change_what_vllm_samples(tiny_model_dir, primed_model_dir):
    """Opt-in (``make test-vllm``): vLLM's engine starts from the unprimed model; pushing the primed model's
    weights makes it sample what the primed model samples, with the trainer's log-probs; pushing the first
    weights back restores its first samples. fp32 on both sides: in bf16 the log-probs differ by up to 0.006 here,
    the mismatch `update/logprob_diff` measures."""
    from verireason.colocate import ColocatedVLLM

    engine = ColocatedVLLM(str(tiny_model_dir), dtype="float32", max_context=512, gpu_memory_utilization=0.3, seed=0)
    with engine.awake():
        before = texts(engine.generate(PROMPTS, GREEDY, 0))
        first_sum = engine.weight_sum("embed_tokens")
        primed = load_causal_lm(str(primed_model_dir))
        assert engine.push(primed.named_parameters()) == len(list(primed.named_parameters()))
        assert engine.weight_sum("embed_tokens") != pytest.approx(first_sum)
        after = engine.generate(PROMPTS, GREEDY, 0)
        primed_engine = HFGenerator.from_model(primed, load_tokenizer(str(primed_model_dir)))
        expected = texts(primed_engine.generate(PROMPTS, GREEDY, 0))
        assert texts(after) == expected and texts(after) != before
        learner = make_learner(primed_model_dir)
        for rollout, mine in zip(rollouts_of(learner, after), learner.logprobs(rollouts_of(learner, after))):
            assert torch.allclose(torch.tensor(rollout.sample_logprobs), mine, atol=1e-3)
        engine.push(load_causal_lm(str(tiny_model_dir)).named_parameters())
        assert texts(engine.generate(PROMPTS, GREEDY, 0)) == before


@pytest.mark.vllm
def test_rl_gen_trains_with_the_colocated_vllm_engine(primed_model_dir, tmp_path):
    """Opt-in (``make test-vllm``): two rl-gen steps with ``engine=vllm`` (fp32, so the trainer and the engine
    agree to rounding). At lr 5e-2 one step moves the policy far: the second step's rollouts match the trainer's
    log-probs only because the update's weights were pushed into the engine before they were sampled. (A KL term
    runs every rollout through the loss, so the mismatch is measured whatever the rewards.)"""
    import json

    from typer.testing import CliRunner

    from tests.conftest import write_toy_bench
    from verireason.cli import app

    write_toy_bench(tmp_path / "toy.jsonl", 16)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "rl-gen", "--model", str(primed_model_dir), "--bench", "custom", "--data-dir", str(tmp_path), "--out", str(run),
        "--steps", "2", "bench.custom.file=toy.jsonl", "engine=vllm", "model.dtype=float32", "model.max_context=512",
        "engine.train_gpu_memory_utilization=0.3", "sampling.max_tokens=12", "trainer.prompts_per_step=4",
        "trainer.group_size=4", "trainer.eval_every=0", "trainer.probe_every=0", "optim.lr=5e-2",
        "optim.warmup_steps=0", "optim.micro_batch_size=16", "algo.kl_coef=0.01", "trainer.device=cpu",
        "progress=false"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["generate/logprob_diff"] < 1e-3 for r in rows), [r["generate/logprob_diff"] for r in rows]
    assert rows[1]["generate/grad_norm"] > 0


@pytest.mark.vllm
def test_two_processes_each_with_a_colocated_vllm_engine(primed_model_dir, tmp_path):
    """Opt-in (``make test-vllm``): under ``torchrun`` each of 2 processes holds its own engine on the trainer's
    process group (vLLM's ``external_launcher``); both steps' rollouts match the trainer's log-probs after the
    pushes. Each engine takes 12% of RAM on vLLM's CPU build."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import write_toy_bench

    write_toy_bench(tmp_path / "toy.jsonl", 16)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561",
               "-m", "verireason", "rl-gen", "--model", str(primed_model_dir), "--bench", "custom", "--data-dir",
               str(tmp_path), "--out", str(run), "--steps", "2", "bench.custom.file=toy.jsonl", "engine=vllm",
               "model.dtype=float32", "model.max_context=512", "engine.train_gpu_memory_utilization=0.12",
               "sampling.max_tokens=12", "trainer.prompts_per_step=4", "trainer.group_size=4", "trainer.eval_every=0",
               "optim.lr=5e-2", "optim.warmup_steps=0", "optim.micro_batch_size=16", "algo.kl_coef=0.01",
               "trainer.device=auto", "progress=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["generate/logprob_diff"] < 1e-3 and r["time/push"] > 0 for r in rows), rows


def test_training_picks_vllm_only_with_vllm_and_a_gpu(monkeypatch):
    import importlib.util

    from verireason import generation

    real_find_spec = importlib.util.find_spec
    for has_vllm, has_gpu, expected in [(True, True, "vllm"), (True, False, "hf"), (False, True, "hf")]:
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a, v=has_vllm: object() if name == "vllm" and v else
                            (None if name == "vllm" else real_find_spec(name, *a)))
        monkeypatch.setattr(torch.cuda, "is_available", lambda g=has_gpu: g)
        assert generation.pick_training_engine("auto") == expected
        assert generation.pick_engine("auto") == ("vllm" if has_vllm else "hf")  # eval: vLLM wherever importable
    assert generation.pick_training_engine("hf") == "hf"


def test_training_engine_settings_that_cannot_run_are_one_line_errors(tmp_path):
    from typer.testing import CliRunner

    from verireason.cli import app

    cases = [(["rl-verify", "algo.loss_agg=part_mean", "algo.tis_cap=2"], "algo.tis_cap weights tokens"),
             (["s2r", "--stage", "orl", "algo.tis_cap=2"], "algo.tis_cap weights tokens")]
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        cases.append((["rl-gen", "engine=vllm"], "engine=vllm needs vLLM"))
    for args, message in cases:
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "x")])
        assert result.exit_code == 2 and message in result.output, result.output
        assert not (tmp_path / "x").exists()


def test_colocated_engine_wakes_once_and_sleeps_after_the_outermost_block():
    """Sleep mode's bookkeeping (CUDA only in vLLM, so checked here with a recording stand-in for ``vllm.LLM``):
    a rollout inside a verify-refine loop's block must not put the engine to sleep under the loop."""
    from verireason.colocate import ColocatedVLLM

    calls = []

    class RecordingLLM:
        def sleep(self, level):
            calls.append(("sleep", level))

        def wake_up(self):
            calls.append("wake")

    engine = object.__new__(ColocatedVLLM)  # no vLLM: only the sleep/wake logic runs
    engine.llm, engine.sleep_level, engine._asleep, engine._depth = RecordingLLM(), 1, True, 0
    with engine.awake():
        with engine.awake():
            pass
        assert calls == ["wake"]
    assert calls == ["wake", ("sleep", 1)]
    with engine.awake():
        pass
    assert calls == ["wake", ("sleep", 1), "wake", ("sleep", 1)]


def test_sampling_temperature_log_probs_in_engine_and_trainer(primed_model_dir):
    """``algo.logprob_temperature=sampling`` (verl's): the trainer's log-probs are of logits / T, and the engine
    records the sampled tokens' log-probs under that same tempered distribution; with ``raw`` (S²R's) both use the
    logits as they are."""
    sampling = SamplingCfg(n=3, temperature=0.7, max_tokens=12)
    tempered = make_learner(primed_model_dir, logprob_temperature="sampling", sampling_temperature=0.7)
    raw = make_learner(primed_model_dir, logprob_temperature="raw", sampling_temperature=0.7)
    for learner in (tempered, raw):
        rollouts = rollouts_of(learner, learner.generate(PROMPTS, sampling, seed=0))
        for rollout, mine in zip(rollouts, learner.logprobs(rollouts)):
            assert torch.allclose(torch.tensor(rollout.sample_logprobs), mine, atol=1e-4)
    rollouts = rollouts_of(raw, raw.generate(PROMPTS, sampling, seed=0))
    hot, cold = tempered.logprobs(rollouts), raw.logprobs(rollouts)
    assert max(float((h - c).abs().max()) for h, c in zip(hot, cold)) > 1e-2  # different distributions


def test_the_policy_gradient_is_the_score_function_of_the_chosen_distribution(primed_model_dir):
    """d/dz of the trainer's log p(y) under logprob_temperature=sampling is (onehot(y) − softmax(z / T)) / T."""
    from verireason.collate import rollouts_to_batch
    from verireason.losses import token_logprobs

    learner = make_learner(primed_model_dir, logprob_temperature="sampling", sampling_temperature=0.7)
    rollouts = rollouts_of(learner, learner.generate(PROMPTS, SamplingCfg(n=1, temperature=0.7, max_tokens=6), 0))
    batch = rollouts_to_batch(rollouts[:1], [1.0], learner.pad_id)
    logits = torch.randn(1, batch.targets.shape[1], 50, requires_grad=True)
    targets = batch.targets.clamp(max=49)

    class Fixed(torch.nn.Module):  # a "model" whose logits are the leaf above
        def forward(self, **_):
            return type("Out", (), {"logits": torch.cat([logits, logits[:, -1:]], dim=1)})

    logp = token_logprobs(learner._logits(Fixed(), batch), targets)
    (grad,) = torch.autograd.grad(logp.sum(), logits)
    expected = (torch.nn.functional.one_hot(targets, 50).float() - torch.softmax(logits.detach() / 0.7, -1)) / 0.7
    assert torch.allclose(grad, expected, atol=1e-6)
