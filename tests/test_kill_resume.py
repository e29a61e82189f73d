"""Nothing lost, nothing twice: a real ``kill -9`` of an ``eval`` and of a training subprocess, then ``--resume``.

SIGKILL runs no handler and no ``finally``: whatever was on disk at that instant is all the resumed run gets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.conftest import REPO, write_toy_bench
from tests.test_rl import SMALL, toy_args

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "verireason", *args], cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if it exits or times out first."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "never reached the point to kill it at"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def finish(args: list[str]) -> None:
    proc = cli(args)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err


def lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_eval_killed_mid_run_resumes_every_sample_exactly_once(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    args = ["eval", "--model", str(tiny_model_dir), "--bench", "arith", "--limit", "24", "--out", str(run),
            "sampling.n=2", "sampling.max_tokens=48", "engine.name=hf", "engine.batch_size=2", "progress=false"]
    kill_when(cli(args), lambda: lines(run / "samples.jsonl") >= 6)
    assert not (run / "summary.json").exists()
    finish([*args, "--resume"])
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    counts = Counter((s["problem_id"], s["sample_index"]) for s in samples)
    assert len(counts) == 24 * 2 and set(counts.values()) == {1}
    assert json.loads((run / "summary.json").read_text())["arith"]["samples"] == 48


def test_training_killed_mid_run_resumes_every_step_exactly_once(primed_model_dir, tmp_path):
    write_toy_bench(tmp_path / "toy.jsonl", 16)
    run = tmp_path / "run"
    args = ["rl-gen", *toy_args(primed_model_dir, tmp_path, run, steps=4), *SMALL, "trainer.save_every=1",
            "trainer.eval_every=0", "trainer.probe_every=0"]
    kill_when(cli(args), lambda: (run / "checkpoints" / "step_000002" / "trainer_state.json").exists())
    assert not (run / "checkpoints" / "step_000004").exists()
    finish([*args, "--resume"])
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert sorted(p.name for p in (run / "rollouts").glob("step_*.jsonl")) == [f"step_00000{i}.jsonl" for i in
                                                                               range(1, 5)]
    rollout_steps = [lines(run / "rollouts" / f"step_00000{i}.jsonl") for i in range(1, 5)]
    assert rollout_steps == [rollout_steps[0]] * 4  # no step's rollouts written twice
    assert (run / "checkpoints" / "step_000004" / "trainer_state.json").exists()
