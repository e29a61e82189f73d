"""RL commands end to end on the primed tiny model: every schedule for 2 steps, learning, resume, 2 processes.

The primed model (conftest.prime_tiny_model) answers the toy task with a boxed 1 or 2 and judges with a boxed
Yes or No, so rewards vary within groups and every schedule has real updates to make.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.conftest import REPO, write_toy_bench
from verireason.cli import app

runner = CliRunner()
SMALL = ["sampling.max_tokens=12", "eval_sampling.max_tokens=12", "eval_sampling.n=2", "eval_limit=4",
         "trainer.prompts_per_step=4", "trainer.group_size=4", "trainer.verify_group_size=4", "trainer.save_every=2",
         "trainer.eval_every=2", "trainer.probe_every=1", "optim.lr=1e-3", "optim.warmup_steps=0",
         "optim.micro_batch_size=4", "engine.batch_size=32", "trainer.device=cpu", "progress=false"]


def toy_args(model: Path, data_dir: Path, out: Path, steps: int = 2) -> list[str]:
    return ["--model", str(model), "--bench", "custom", "--eval-bench", "custom", "--data-dir", str(data_dir),
            "--out", str(out), "--steps", str(steps), "bench.custom.file=toy.jsonl", "eval_bench.custom.file=toy.jsonl"]


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toy")
    write_toy_bench(folder / "toy.jsonl", 16)
    write_toy_bench(folder / "ones.jsonl", 16, answers=("1",))
    return folder


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def untimed(run: Path) -> list[dict]:
    """A run's metrics without its timings (what must repeat exactly after a resume)."""
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in metrics(run)]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("command,schedule,expect", [
    ("rl-gen", "generate", ["generate/loss", "probe/accuracy"]),
    ("rl-verify", "verify_only", ["verify/loss", "generate/accuracy", "verify/yes_rate"]),
    ("rl-verify", "verify_init", ["verify/loss", "generate/loss"]),
    ("rl-verify", "verify_alter", ["generate/loss", "verify/loss"]),
    ("rl-verify", "mixed", ["mixed/loss", "verify/accuracy"]),
])
def test_two_steps_of_every_schedule(primed_model_dir, toy_dir, tmp_path, command, schedule, expect):
    extra = [] if command == "rl-gen" else ["--schedule", schedule, "schedule.init_steps=1", "schedule.interval=2"]
    result = runner.invoke(app, [command, *toy_args(primed_model_dir, toy_dir, tmp_path / "run"), *extra, *SMALL])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    rows = metrics(run)
    assert [r["step"] for r in rows] == [0, 1, 2]
    seen = {k for r in rows for k in r}
    for key in expect:
        assert key in seen, (key, sorted(seen))
    for row in rows:
        for key, value in row.items():
            if key.endswith("/loss"):
                assert math.isfinite(value)
    assert "eval/custom/accuracy" in rows[0] and "eval/custom/accuracy" in rows[2]
    ckpt = run / "checkpoints" / "step_000002"
    assert (ckpt / "config.json").is_file() and (ckpt / "rank0.pt").is_file()
    before, after = weights(primed_model_dir), weights(ckpt)
    assert any(not torch.equal(before[k], after[k]) for k in before), "no weight changed"
    assert (run / "rollouts" / "step_000001.jsonl").is_file() and (run / "training.png").is_file()
    if schedule == "verify_alter":  # the verification update happens on step 2 from step 1's pairs, then a flush
        assert "verify/loss" not in rows[1] and "verify/loss" in rows[2]


@pytest.mark.parametrize("command,override,message", [
    ("rl-gen", "schedule.name=verify_only", "unknown schedule.name='verify_only'; valid: generate"),
    ("rl-verify", "schedule.name=alternate", "unknown schedule.name='alternate'; valid: generate, verify_only"),
    ("rl-verify", "algo.advantage=ppo", "unknown algo.advantage='ppo'; valid: grpo, dr_grpo, rloo"),
    ("rl-verify", "algo.loss_agg=sum", "unknown algo.loss_agg='sum'; valid: token_mean, seq_mean"),
    ("rl-verify", "trainer.group_size=0", "trainer.group_size=0 is out of range: it must be >= 1"),
    ("rl-gen", "algo.tis_cap=0.5", "algo.tis_cap=0.5 is out of range: it must be >= 1"),
    ("rl-gen", "engine.sleep_level=2", "engine.sleep_level=2 is out of range: it must be in [0, 1]"),
])
def test_bad_training_settings_are_one_line_errors(tmp_path, command, override, message):
    result = runner.invoke(app, [command, "--out", str(tmp_path / "x"), override])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "x").exists()  # refused before anything was made


def test_reward_rises_on_a_toy_task(primed_model_dir, toy_dir, tmp_path):
    """GRPO learns to answer 1 (the gold answer of every ones.jsonl problem) within 12 CPU steps."""
    args = toy_args(primed_model_dir, toy_dir, tmp_path / "learn", steps=12)
    args = [a.replace("toy.jsonl", "ones.jsonl") for a in args]
    result = runner.invoke(app, ["rl-gen", *args, *SMALL, "trainer.prompts_per_step=8", "trainer.group_size=8",
                                 "trainer.eval_every=0", "trainer.probe_every=0", "trainer.save_every=12",
                                 "optim.lr=3e-3", "optim.micro_batch_size=16"])
    assert result.exit_code == 0, result.output
    rewards = [r["generate/reward"] for r in metrics(tmp_path / "learn")]
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.2, rewards


def test_interrupted_run_resumes_step_for_step(primed_model_dir, toy_dir, tmp_path, monkeypatch):
    """A run killed during step 3 and resumed from its step-2 checkpoint matches an uninterrupted run."""
    from verireason.papers import self_verify as schedules

    common = ["--schedule", "verify_alter", "schedule.interval=2", *SMALL, "trainer.eval_every=0",
              "trainer.probe_every=0"]
    whole = runner.invoke(app, ["rl-verify", *toy_args(primed_model_dir, toy_dir, tmp_path / "whole", 4), *common])
    assert whole.exit_code == 0, whole.output

    original = schedules.SCHEDULES["verify_alter"]

    def dies_at_step_3(schedule, obj, step, timer):
        if step == 3:
            raise KeyboardInterrupt
        return original(schedule, obj, step, timer)

    monkeypatch.setitem(schedules.SCHEDULES, "verify_alter", dies_at_step_3)
    cut = runner.invoke(app, ["rl-verify", *toy_args(primed_model_dir, toy_dir, tmp_path / "cut", 4), *common])
    assert cut.exit_code == 130 and "--resume" in cut.output
    monkeypatch.setitem(schedules.SCHEDULES, "verify_alter", original)
    resumed = runner.invoke(app, ["rl-verify", *toy_args(primed_model_dir, toy_dir, tmp_path / "cut", 4), *common,
                                  "--resume"])
    assert resumed.exit_code == 0, resumed.output

    assert [r["step"] for r in untimed(tmp_path / "cut")] == [1, 2, 3, 4]
    for a, b in zip(untimed(tmp_path / "whole"), untimed(tmp_path / "cut")):
        assert a.keys() == b.keys()
        for key in a:
            if a[key] is None:  # e.g. the entropy of an update with nothing to run
                assert b[key] is None, (a["step"], key)
            else:
                assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key)
    last_whole = weights(tmp_path / "whole" / "checkpoints" / "step_000004")
    last_cut = weights(tmp_path / "cut" / "checkpoints" / "step_000004")
    for key in last_whole:
        assert torch.allclose(last_whole[key], last_cut[key], atol=1e-6), key


def test_two_processes_over_gloo(primed_model_dir, toy_dir, tmp_path):
    """The distributed path on CPU: two processes over gloo (``torchrun``, whose environment ``accelerate`` picks up;
    ``accelerate launch`` runs several CPU processes only through mpirun) train, gather and checkpoint."""
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
               "-m", "verireason", "rl-verify", *toy_args(primed_model_dir, toy_dir, run), *SMALL,
               "trainer.device=auto"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = metrics(run)
    assert [r["step"] for r in rows] == [0, 1, 2] and math.isfinite(rows[2]["verify/loss"])
    rollouts = (run / "rollouts" / "step_000001.jsonl").read_text().splitlines()
    verify_prompts = rows[1]["verify/prompts"]
    assert len(rollouts) == (verify_prompts - verify_prompts % 2) * 4  # both processes' verifications, gathered
    assert (run / "checkpoints" / "step_000002" / "rank1.pt").is_file()


def test_skipping_zero_advantage_rollouts_changes_nothing(primed_model_dir):
    """Leaving out all-equal groups' rollouts (exactly zero gradient) gives the same update as running them."""
    from verireason.models import load_causal_lm, load_tokenizer
    from verireason.records import Rollout
    from verireason.trainer import Learner, build_accelerator

    def rollout(group, completion, reward):
        return Rollout("generate", group, "", "", (3, 70, 71), tuple(completion), reward, "stop")

    rollouts = [rollout("a", [80, 2], 1.0), rollout("a", [81, 82, 2], 0.0), rollout("b", [83, 2], 1.0),
                rollout("b", [84, 85, 86, 2], 1.0)]  # group b: zero advantage
    results = []
    for skip in (True, False):
        learner = Learner(build_accelerator("cpu"), load_causal_lm(str(primed_model_dir)).train(),
                          load_tokenizer(str(primed_model_dir)), lr=1e-2, weight_decay=0.1, warmup_steps=0,
                          grad_clip=1.0, micro_batch_size=1)
        learner.skip_zero_advantage = skip
        stats = learner.update(rollouts)
        results.append(({k: v.detach().clone() for k, v in learner.model.state_dict().items()}, stats))
    (skipped, a), (full, b) = results
    assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    only_zero = Learner(build_accelerator("cpu"), load_causal_lm(str(primed_model_dir)).train(),
                        load_tokenizer(str(primed_model_dir)), lr=1e-2, weight_decay=0.1, warmup_steps=0,
                        grad_clip=1.0, micro_batch_size=1).update(rollouts[2:])  # nothing to run: still reported
    assert only_zero["loss"] == 0.0 and only_zero["grad_norm"] == 0.0
    for key in skipped:
        assert torch.allclose(skipped[key], full[key], atol=1e-6), key


def test_zero_advantage_skip_keeps_rollouts_with_per_token_credit():
    from verireason.records import Rollout
    from verireason.trainer import _moves

    plain = Rollout("generate", "g", "p", "c", (1,), (4, 5), 1.0, "stop")
    assert not _moves(plain, 0.0) and _moves(plain, 0.5)
    credited = Rollout("s2r", "g", "p", "c", (1,), (4, 5), 1.0, "stop", token_advantages=(0.0, 1.0))
    assert _moves(credited, 0.0)  # the group scalar is replaced by the per-token advantages
    untrained = Rollout("s2r", "g", "p", "c", (1,), (4, 5), 1.0, "stop", trained=(True, False),
                        token_advantages=(0.0, 1.0))
    assert not _moves(untrained, 0.0)  # the only non-zero advantage sits on an untrained token
    assert not _moves(Rollout("vil", "g", "p", "c", (1,), (4, 5), 1.0, "stop", trained=(False, False)), 1.0)
