"""Paper 2's commands end to end on the primed tiny model: every ``stv`` method and both ``vil`` modes for 2 steps,
their one-line errors, and resume step for step.

The primed model (conftest.prime_tiny_model) answers the toy task with a boxed 1 or 2 (half right) and judges with a
boxed Yes or No, so candidates are mixed and verdicts parse. ``feedback_words=0`` counts any verdict as having its
feedback, so verdict-RL rewards vary within groups.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.test_rl import metrics, toy_args, untimed, weights
from verireason.cli import app
from verireason.records import Chain, Round

runner = CliRunner()
COMMON = ["sampling.max_tokens=12", "eval_sampling.max_tokens=12", "eval_limit=4", "trainer.prompts_per_step=4",
          "trainer.group_size=4", "trainer.save_every=2", "trainer.eval_every=2", "optim.lr=1e-3",
          "optim.warmup_steps=0", "optim.weight_decay=0", "optim.micro_batch_size=4", "engine.batch_size=32",
          "trainer.device=cpu", "progress=false"]
STV = [*COMMON, "sampling.max_tokens=24", "eval_sampling.max_tokens=24", "candidates.sampling.n=2",
       "candidates.sampling.max_tokens=12", "feedback_words=0"]
VIL = [*COMMON, "verify.sampling.max_tokens=24", "verify.rounds=1", "verify.chains=2", "vil.rounds=2"]


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory) -> Path:
    from tests.conftest import write_toy_bench

    folder = tmp_path_factory.mktemp("toy2")
    write_toy_bench(folder / "toy.jsonl", 16)
    return folder


def _finite_losses(rows: list[dict]) -> None:
    for row in rows:
        for key, value in row.items():
            if key.endswith(("/loss", "/jsd")) and value is not None:
                assert math.isfinite(value), (row["step"], key, value)


def _changed(before: Path, run: Path) -> bool:
    a, b = weights(before), weights(run / "checkpoints" / "step_000002")
    return any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method,expect", [
    ("verdict_rl", ["stv/verify_balanced_accuracy", "stv/reward", "update/loss"]),
    ("opd", ["update/jsd", "stv/tpr", "stv/feedback_tokens"]),
    ("stv", ["update/jsd", "stv/reward", "stv/unparseable"]),
    ("sft", ["teacher/verify_accuracy", "sft/kept", "update/nll"]),
])
def test_two_steps_of_every_stv_method(primed_model_dir, toy_dir, tmp_path, method, expect):
    run = tmp_path / "run"
    result = runner.invoke(app, ["stv", "--method", method, *toy_args(primed_model_dir, toy_dir, run), *STV])
    assert result.exit_code == 0, result.output
    rows = metrics(run)
    assert [r["step"] for r in rows] == [0, 1, 2]
    seen = {k for r in rows for k in r}
    for key in expect:
        assert key in seen, (key, sorted(seen))
    assert "heldout/verify_accuracy" in rows[0] and "heldout/verify_accuracy" in rows[2]
    _finite_losses(rows)
    assert _changed(primed_model_dir, run), "no weight changed"
    assert (run / "training.png").is_file() and (run / "heldout_candidates.jsonl").is_file()
    if method != "sft":
        step1 = [json.loads(line) for line in (run / "rollouts" / "step_000001.jsonl").read_text().splitlines()]
        assert len(step1) == 4 * 4 and all(r["teacher_prompt_ids"] for r in step1)


def test_stv_reads_candidates_from_an_eval_run(primed_model_dir, toy_dir, tmp_path):
    """``--samples`` an eval run: no candidate is sampled during training; every candidate is one of its samples."""
    cands = tmp_path / "cands"
    result = runner.invoke(app, ["eval", "--model", str(primed_model_dir), "--bench", "custom", "--data-dir",
                                 str(toy_dir), "bench.custom.file=toy.jsonl", "--out", str(cands), "sampling.n=2",
                                 "sampling.max_tokens=12", "grader=dapo_strict", "engine=hf", "progress=false"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    result = runner.invoke(app, ["stv", "--method", "verdict_rl", *toy_args(primed_model_dir, toy_dir, run),
                                 "--samples", str(cands), *STV, "trainer.eval_every=0"])
    assert result.exit_code == 0, result.output
    rows = metrics(run)
    assert all("time/gen_candidates" not in r for r in rows)
    responses = {json.loads(line)["completion"] for line in (cands / "samples.jsonl").read_text().splitlines()}
    judged = [json.loads(line)["prompt"] for line in (run / "rollouts" / "step_000001.jsonl").read_text().splitlines()]
    assert all(any(r in prompt for r in responses) for prompt in judged)


@pytest.mark.parametrize("command", ["stv", "vil"])
def test_paper2_runs_resume_step_for_step(primed_model_dir, toy_dir, tmp_path, monkeypatch, command):
    """A run interrupted during step 3 and resumed from its step-2 checkpoint matches an uninterrupted run."""
    from verireason.papers.stv import VerifierInTheLoop, VerifierTraining

    loop = VerifierTraining if command == "stv" else VerifierInTheLoop
    settings = ["--method", "stv", *STV] if command == "stv" else VIL
    args = [command, *settings, "trainer.eval_every=0"]
    whole = runner.invoke(app, [*args, *toy_args(primed_model_dir, toy_dir, tmp_path / "whole", 4)])
    assert whole.exit_code == 0, whole.output
    original = loop.step

    def dies_at_step_3(self, step, timer):
        if step == 3:
            raise KeyboardInterrupt
        return original(self, step, timer)

    monkeypatch.setattr(loop, "step", dies_at_step_3)
    cut = runner.invoke(app, [*args, *toy_args(primed_model_dir, toy_dir, tmp_path / "cut", 4)])
    assert cut.exit_code == 130
    monkeypatch.setattr(loop, "step", original)
    resumed = runner.invoke(app, [*args, *toy_args(primed_model_dir, toy_dir, tmp_path / "cut", 4), "--resume"])
    assert resumed.exit_code == 0, resumed.output

    assert [r["step"] for r in untimed(tmp_path / "cut")] == [1, 2, 3, 4]
    for a, b in zip(untimed(tmp_path / "whole"), untimed(tmp_path / "cut")):
        assert a.keys() == b.keys()
        for key in a:
            same = a[key] is None and b[key] is None or a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6)
            assert same, (a["step"], key, a[key], b[key])


def test_vil_online_two_steps(primed_model_dir, toy_dir, tmp_path):
    """Every round rewarded (the primed model's refinements are never right, so final-only rewards would all be 0;
    the final-answer mode is tested with a scripted verifier in test_stv.py)."""
    run = tmp_path / "run"
    result = runner.invoke(app, ["vil", *toy_args(primed_model_dir, toy_dir, run), *VIL, "vil.reward=every_round"])
    assert result.exit_code == 0, result.output
    rows = metrics(run)
    assert [r["step"] for r in rows] == [0, 1, 2]
    for key in ("eval/custom/round0_pass@1", "eval/custom/final_pass@1", "eval/custom/final_accept"):
        assert key in rows[0] and key in rows[2], key
    assert {"vil/reward", "vil/round0_pass@1", "vil/final_pass@1", "update/loss"} <= rows[1].keys()
    _finite_losses(rows)
    assert _changed(primed_model_dir, run)
    turns = [json.loads(line) for line in (run / "rollouts" / "step_000001.jsonl").read_text().splitlines()]
    assert len(turns) >= 4 * 2  # at least the round-0 attempt of every episode
    for t in turns:  # each turn rewarded by its own answer; no per-token flags: only its own tokens are trained
        assert t["reward"] == float(t["meta"]["correct"]) and t["trained"] is None
    for t in turns:  # a refinement is sampled from refine(problem, previous attempt, feedback): all prompt tokens
        assert ("A reviewer's feedback on it:" in t["prompt"]) == (t["meta"]["round"] > 0)


def test_vil_prompts_mode_trains_on_rejected_rounds_of_a_vr_run(primed_model_dir, toy_dir, tmp_path):
    chains = tmp_path / "vr" / "chains.jsonl"
    chains.parent.mkdir()
    rows = []
    for i in range(4):
        rejected = Round(response="\\boxed{2}", extracted="2", correct=i % 2 == 0, tokens=3, verdict=False,
                         verified=True, verification=f"The sum in line {i} is off by one.\nVerdict: \\boxed{{No}}")
        accepted = Round(response="\\boxed{1}", extracted="1", correct=True, tokens=3, verdict=True, verified=True)
        rows.append(Chain("custom", f"toy-{i}", 0, None, [rejected, accepted], accepted_round=1))
    from dataclasses import asdict

    chains.write_text("".join(json.dumps(asdict(c)) + "\n" for c in rows))
    run = tmp_path / "run"
    result = runner.invoke(app, ["vil", "--mode", "prompts", "--chains", str(chains.parent),
                                 *toy_args(primed_model_dir, toy_dir, run), *VIL, "trainer.eval_every=0"])
    assert result.exit_code == 0, result.output
    steps = metrics(run)
    assert [r["step"] for r in steps] == [1, 2] and "vil/refine_accuracy" in steps[0]
    turns = [json.loads(line) for line in (run / "rollouts" / "step_000001.jsonl").read_text().splitlines()]
    assert len(turns) == 4 * 4
    assert all("is off by one" in t["prompt"] and "\\boxed{2}" in t["prompt"] for t in turns)
    assert _changed(primed_model_dir, run)


@pytest.mark.parametrize("command,args,message", [
    ("stv", ["--method", "dpo"], "unknown method 'dpo'; valid: sft, verdict_rl, opd, stv"),
    ("stv", ["distill.teacher=ema"], "unknown distill.teacher='ema'; valid: frozen, live"),
    ("stv", ["candidates.balance=even"], "unknown candidates.balance='even'; valid: alternate, labels"),
    ("stv", ["distill.divergence=kl"], "unknown distill.divergence='kl'; valid: jsd, sampled_reverse_kl"),
    ("stv", ["distill.beta=1.5"], "distill.beta=1.5 is out of range"),
    ("stv", ["prompt=boxed_cot"], "has no teacher prompt (informed_verify_user); use prompt=stv"),
    ("vil", ["--mode", "offline"], "unknown vil.mode='offline'; valid: online, prompts"),
    ("vil", ["--mode", "prompts"], "vil.mode=prompts needs vil.chains=RUN"),
    ("vil", ["vil.reward=sum"], "unknown vil.reward='sum'; valid: final, every_round"),
    ("vil", ["--mode", "prompts", "--chains", "/no/such/run"], "vil.chains (an `eval --protocol vr_loop` run): "
     "/no/such/run does not exist; pass a run directory or its chains.jsonl"),
    ("stv", ["--samples", "/no/such/run"], "candidates.samples (an eval run): /no/such/run does not exist"),
])
def test_bad_paper2_settings_are_one_line_errors(tmp_path, command, args, message):
    result = runner.invoke(app, [command, "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command,args", [
    ("stv", ["--model", "qwen2.5-math-7b", "preset=stv"]),
    ("stv", ["--model", "qwen3-1.7b", "--method", "opd", "preset=stv"]),
    ("vil", ["--model", "qwen3-8b", "--verifier", "qwen3-4b", "preset=vil"]),
])
def test_full_scale_configs_compose(command, args):
    result = runner.invoke(app, [command, *args, "--cfg"])
    assert result.exit_code == 0, result.output
    assert "prompts_per_step: 64" in result.output


@pytest.mark.parametrize("command,settings,port", [
    ("stv", ["--method", "stv", *STV], 29541),
    ("stv", ["--method", "sft", *STV], 29542),
    ("vil", [*VIL, "vil.reward=every_round"], 29543),
])
def test_paper2_commands_run_on_two_processes_over_gloo(primed_model_dir, toy_dir, tmp_path, command, settings, port):
    """Both processes sample their share, gather the step's outcomes and checkpoint (the frozen teacher or verifier
    loaded beside each process's policy)."""
    import os
    import subprocess
    import sys

    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
              "-m", "verireason", command, *toy_args(primed_model_dir, toy_dir, run), *settings, "trainer.device=auto"]
    done = subprocess.run(launch, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = metrics(run)
    assert [r["step"] for r in rows] == [0, 1, 2]
    _finite_losses(rows)
    assert (run / "checkpoints" / "step_000002" / "rank1.pt").is_file()
    if "stv" in settings:
        assert rows[1]["stv/verifications"] == 4 * 4  # both processes' candidates × verifications, gathered
    if "sft" in settings:  # the kept teacher verifications were shared out, so both processes stepped
        assert all("update/nll" in r for r in rows[1:]), rows
