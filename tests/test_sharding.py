"""FSDP2 (``trainer.sharding=fsdp2``, verireason.sharding) on 2 CPU processes over gloo, under ``torchrun``: the
sharded run equals the unsharded (DDP) run of the same command, its checkpoint (the gathered weights) equals the
unsharded one, a sharded run killed with SIGKILL and resumed repeats the uninterrupted one, and LoRA runs sharded.

Tolerance: both runs see the same rollouts (generation reads whole weights either way); they differ only in how the
gradients are summed over the two processes (FSDP2's reduce-scatter per micro-batch vs DDP's one all-reduce), a
float32 rounding of about 1e-7 per step, which Adam's normalized steps of lr = 1e-3 carry into weights at about
lr × 1e-7 / 1e-8 at worst; 2-4 steps stay far within atol = 1e-4 on weights and rel = 1e-3 on logged losses.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.test_paper2_commands import STV, VIL
from tests.test_rl import SMALL, metrics, toy_args, untimed, weights
from tests.test_rl import toy_dir  # noqa: F401 - a fixture used here


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args: list[str]) -> tuple[list[str], dict]:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_port()),
               "-m", "verireason", *args, "trainer.device=auto"]
    return command, {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}


def torchrun(args: list[str], cwd: Path) -> None:
    command, env = _launch(args)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])


def torchrun_killed(args: list[str], cwd: Path, once: Path, never: Path) -> None:
    """Start the run and SIGKILL torchrun and both workers (one process group) as soon as ``once`` exists; fail
    if ``never`` exists by then (the run got past the point the kill is meant to hit)."""
    command, env = _launch(args)
    log = cwd / "killed-run.log"  # a file, not a pipe: a full pipe would stall the run
    with log.open("w") as handle:
        run = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                               start_new_session=True)
    deadline = time.monotonic() + 900
    while not once.exists():
        if run.poll() is not None or time.monotonic() > deadline:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
            pytest.fail(f"{once} never appeared: {log.read_text()[-4000:]}")
        time.sleep(0.005)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert not never.exists(), f"the run reached {never} before the kill"


# a token budget: the two processes pack different numbers of micro-batches, so lockstep fillers run
COMMON = [*SMALL, "trainer.eval_every=0", "trainer.probe_every=0", "optim.micro_batch_tokens=60"]


@pytest.fixture(scope="module")
def runs(primed_model_dir, toy_dir, tmp_path_factory) -> Path:  # noqa: F811
    """rl-gen for 2 steps unsharded; sharded for 3 steps; sharded for 3 steps killed (SIGKILL) in step 3, after
    step 2's checkpoint, and resumed."""
    work = tmp_path_factory.mktemp("sharding")
    for name, steps, extra in (("none", 2, ["trainer.sharding=none"]), ("fsdp2-3", 3, ["trainer.sharding=fsdp2"])):
        torchrun(["rl-gen", *toy_args(primed_model_dir, toy_dir, work / name, steps), *COMMON, *extra], work)
    sharded = ["rl-gen", *toy_args(primed_model_dir, toy_dir, work / "fsdp2", 3), *COMMON, "trainer.sharding=fsdp2"]
    checkpoints = work / "fsdp2" / "checkpoints"
    torchrun_killed(sharded, work, once=checkpoints / "step_000002" / "trainer_state.json",
                    never=checkpoints / "step_000003")
    torchrun([*sharded, "--resume"], work)
    return work


def _same_rows(a: list[dict], b: list[dict], rel: float) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        for key in x:
            if key.startswith("update/padding") or x[key] is None:
                continue
            assert x[key] == pytest.approx(y[key], rel=rel, abs=1e-6), (x["step"], key, x[key], y[key])


def _same_weights(a: Path, b: Path, atol: float) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.allclose(wa[key], wb[key], atol=atol), (key, float((wa[key] - wb[key]).abs().max()))


def test_sharded_rl_gen_equals_the_unsharded_run(runs):
    none = untimed(runs / "none")
    sharded = [r for r in untimed(runs / "fsdp2") if r["step"] <= 2]
    _same_rows(none, sharded, rel=1e-3)
    # the checkpoint of the sharded run holds the gathered full weights: the unsharded run's
    _same_weights(runs / "none" / "checkpoints" / "step_000002", runs / "fsdp2" / "checkpoints" / "step_000002", 1e-4)
    assert (runs / "fsdp2" / "checkpoints" / "step_000003" / "optimizer").is_dir()  # sharded: the AdamW shards
    assert not (runs / "none" / "checkpoints" / "step_000002" / "optimizer").exists()


def test_killed_and_resumed_sharded_run_repeats_the_uninterrupted_one(runs):
    _same_rows(untimed(runs / "fsdp2-3"), untimed(runs / "fsdp2"), rel=1e-5)
    _same_weights(runs / "fsdp2-3" / "checkpoints" / "step_000003", runs / "fsdp2" / "checkpoints" / "step_000003",
                  1e-6)
    assert not (runs / "fsdp2" / "checkpoints" / "step_000002" / "optimizer").exists()  # only the latest keeps it


@pytest.mark.parametrize("command,settings", [("stv", ["--method", "stv", *STV]), ("vil", VIL)])
def test_sharded_paper2_runs_equal_the_unsharded_run(primed_model_dir, toy_dir, tmp_path, command,  # noqa: F811
                                                     settings):
    for name in ("none", "fsdp2"):
        torchrun([command, *settings, *toy_args(primed_model_dir, toy_dir, tmp_path / name), "trainer.eval_every=0",
                  "optim.micro_batch_tokens=60", f"trainer.sharding={name}"], tmp_path)
    _same_rows(untimed(tmp_path / "none"), untimed(tmp_path / "fsdp2"), rel=1e-3)
    _same_weights(tmp_path / "none" / "checkpoints" / "step_000002", tmp_path / "fsdp2" / "checkpoints" / "step_000002",
                  1e-4)


@pytest.mark.parametrize("command,settings,key", [("stv", ["--method", "stv", *STV], "update/loss"),
                                                  ("vil", VIL, "vil/reward")])
def test_paper2_with_lora_runs_sharded(primed_model_dir, toy_dir, tmp_path, command, settings, key):  # noqa: F811
    """STV's frozen teacher and ViL's default verifier are the initial model: under LoRA and FSDP2, the replica with
    its adapters off."""
    torchrun([command, *settings, *toy_args(primed_model_dir, toy_dir, tmp_path / "run"), "trainer.eval_every=0",
              "trainer.sharding=fsdp2", "lora.rank=4", "lora.alpha=8"], tmp_path)
    rows = metrics(tmp_path / "run")
    assert rows[-1]["step"] == 2 and all(r[key] is not None for r in rows if "step" in r)
    assert (tmp_path / "run" / "checkpoints" / "step_000002" / "adapter" / "adapter_config.json").is_file()


def test_lora_runs_sharded_and_resumes(primed_model_dir, toy_dir, tmp_path):  # noqa: F811
    lora = ["trainer.sharding=fsdp2", "lora.rank=4", "lora.alpha=8", "algo.kl_coef=0.05"]
    torchrun(["rl-gen", *toy_args(primed_model_dir, toy_dir, tmp_path / "whole", 3), *COMMON, *lora], tmp_path)
    torchrun(["rl-gen", *toy_args(primed_model_dir, toy_dir, tmp_path / "cut", 2), *COMMON, *lora], tmp_path)
    torchrun(["rl-gen", *toy_args(primed_model_dir, toy_dir, tmp_path / "cut", 3), *COMMON, *lora, "--resume"],
             tmp_path)
    _same_rows(untimed(tmp_path / "whole"), untimed(tmp_path / "cut"), rel=1e-5)
    ckpt = tmp_path / "cut" / "checkpoints" / "step_000003"
    assert json.loads((ckpt / "adapter" / "adapter_config.json").read_text())["r"] == 4
    _same_weights(tmp_path / "whole" / "checkpoints" / "step_000003", ckpt, 1e-6)
    assert metrics(tmp_path / "cut")[-1]["step"] == 3


def test_uneven_processes_run_lockstep_fillers_and_equal_ddp(tiny_model_dir, tmp_path):
    """Rank 0 has five micro-batches and rank 1 two (three supervised vs one): FSDP2's fillers keep the sharded
    forwards in step, add nothing to the gradient, and the result is DDP's."""
    results = {}
    for sharding in ("none", "fsdp2"):
        out = tmp_path / f"{sharding}.pt"
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                   str(_port()), str(Path(__file__).with_name("sharded_worker.py")), str(tiny_model_dir), sharding,
                   str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
        results[sharding] = torch.load(out, weights_only=False)
    ddp, fsdp = results["none"], results["fsdp2"]
    for key in ("loss", "sft_loss", "grad_norm"):
        assert fsdp[key] == pytest.approx(ddp[key], rel=1e-5), key
    for key, value in ddp["weights"].items():
        assert torch.allclose(fsdp["weights"][key], value, atol=1e-6), key
