"""Multi-node training on an existing launcher, proven on one CPU machine: two ``accelerate launch`` processes with
machine ranks 0 and 1 (one training process each) meet at the loopback address, as two nodes of
``experiments/slurm/train.sbatch`` would meet at the first node's address, and train over gloo.

``accelerate launch --cpu`` starts several processes only through mpirun, so the launchers run with
``--multi_gpu``: accelerate then hands them to torchrun's launcher, and on a machine without CUDA our
``build_accelerator`` trains on CPU over gloo.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import pytest

from tests.test_rl import SMALL, toy_args, toy_dir  # noqa: F401 - toy_dir is a fixture used here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher(rank: int, port: int, args: list[str], cwd) -> subprocess.Popen:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
               "--machine_rank", str(rank), "--num_processes", "2", "--main_process_ip", "127.0.0.1",
               "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "verireason", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("sharding", ["none", "fsdp2"])
def test_two_machines_on_the_loopback_address(primed_model_dir, toy_dir, tmp_path, sharding):  # noqa: F811
    run = tmp_path / "two-machines"
    args = ["rl-verify", *toy_args(primed_model_dir, toy_dir, run), *SMALL, "trainer.device=auto",
            f"trainer.sharding={sharding}"]
    port = free_port()
    machines = [launcher(rank, port, args, tmp_path) for rank in (0, 1)]
    outputs = []
    for proc in machines:
        try:
            outputs.append(proc.communicate(timeout=900)[0])
        finally:
            if proc.poll() is None:
                proc.kill()
    for rank, (proc, out) in enumerate(zip(machines, outputs)):
        assert proc.returncode == 0, f"machine {rank}:\n{out[-3000:]}"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2] and math.isfinite(rows[2]["verify/loss"])
    verify_prompts = rows[1]["verify/prompts"]
    rollouts = (run / "rollouts" / "step_000001.jsonl").read_text().splitlines()
    assert len(rollouts) == (verify_prompts - verify_prompts % 2) * 4  # both machines' rollouts, gathered
    ckpt = run / "checkpoints" / "step_000002"
    assert (ckpt / "rank0.pt").is_file() and (ckpt / "rank1.pt").is_file()  # machine 1's process saved its state
    assert (ckpt / "optimizer").is_dir() == (sharding == "fsdp2")  # FSDP2: each machine's AdamW shards
