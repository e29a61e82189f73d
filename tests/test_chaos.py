"""Chaos: what a cluster does to a run, each followed by ``--resume``; nothing lost, nothing counted twice.

* two starts on one run directory at once, and ``--resume`` while the run still runs: one run, the rest refused;
* SIGTERM and SIGKILL of ``eval`` and of training at a random point (``CHAOS_SEED=N`` repeats a draw; a failure
  prints its seed): SIGTERM ends with the exact resume command and exit 143, SIGKILL with nothing at all; the
  resumed run's counts equal an uninterrupted run's;
* a full disk: an injected ``ENOSPC`` in the writer, and a real 4 MB file system where this machine lets the test
  mount one, filled during an evaluation and during a checkpoint; one line, then the printed resume command
  completes the run.

SIGKILL runs no handler and no ``finally``: whatever was on disk at that instant is all the resumed run gets.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO, write_toy_bench
from tests.test_rl import SMALL, toy_args
from verireason.cli import app

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
SEED = int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(10**6)))
PROBLEMS, N = 24, 2


def cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "verireason", *args], cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(args: list[str]) -> None:
    proc = cli(args)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err


def lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def eval_args(model: Path, run: Path) -> list[str]:
    return ["eval", "--model", str(model), "--bench", "arith", "--limit", str(PROBLEMS), "--out", str(run),
            f"sampling.n={N}", "sampling.max_tokens=48", "engine.name=hf", "engine.batch_size=2", "progress=false"]


def assert_eval_complete(run: Path) -> None:
    """Every (problem, sample index) exactly once, and the summary counts them so."""
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    counts = Counter((s["problem_id"], s["sample_index"]) for s in samples)
    assert len(counts) == PROBLEMS * N and set(counts.values()) == {1}, f"CHAOS_SEED={SEED}"
    summary = json.loads((run / "summary.json").read_text())["arith"]
    assert (summary["problems"], summary["samples"], summary["n"]) == (PROBLEMS, PROBLEMS * N, N)


def test_concurrent_starts_give_one_run_and_refusals(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    args = eval_args(tiny_model_dir, run)
    first, second = cli(args), cli(args)  # an accidental double submission
    while lines(run / "samples.jsonl") == 0 and first.poll() is None and second.poll() is None:
        time.sleep(0.05)
    late = cli([*args, "--resume"])  # --resume while the run still runs
    results = [(p.wait(timeout=600), p.stderr.read()) for p in (first, second, late)]
    assert sorted(code for code, _ in results[:2]) == [0, 2], results
    for code, err in results[:2] + results[2:]:
        if code == 2:
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
            assert f"{run} is in use by pid " in err and "verireason eval" in err, err
    assert results[2][0] == 2, results[2]
    assert_eval_complete(run)


# --- signals at random points -----------------------------------------------------------------------------------


def hit(proc: subprocess.Popen, ready, sig: int, rng: random.Random, timeout: float = 300) -> None:
    """Send ``sig`` once ``ready()`` holds plus a random delay (or never, if the run ends first)."""
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None:
        assert time.monotonic() < deadline, "never reached the point to interrupt it at"
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.5))
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    proc.wait(timeout=120)


def resume_after(proc: subprocess.Popen, sig: int, args: list[str]) -> list[str]:
    """The command that continues the run: under SIGTERM, the one it printed (checked to be one clean line)."""
    err = proc.stderr.read()
    if sig == signal.SIGKILL or proc.returncode == 0:
        assert proc.returncode in (0, -signal.SIGKILL), err
        return [*args, "--resume"]
    assert proc.returncode == 143, f"CHAOS_SEED={SEED}: {err}"
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted (SIGTERM): ") and "continue with: verireason " in last, last
    return shlex.split(last.split("continue with: verireason ", 1)[1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_eval_interrupted_at_a_random_point_resumes_to_the_full_run(sig, tiny_model_dir, tmp_path):
    rng = random.Random(f"{SEED}-eval-{sig}")
    run, threshold = tmp_path / "run", rng.randrange(0, PROBLEMS * N)
    args = eval_args(tiny_model_dir, run)
    proc = cli(args)
    hit(proc, lambda: (run / "run.json").exists() and lines(run / "samples.jsonl") >= threshold, sig, rng)
    finish(resume_after(proc, sig, args))
    assert_eval_complete(run)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_training_interrupted_at_a_random_point_resumes_to_the_full_run(sig, primed_model_dir, tmp_path):
    rng = random.Random(f"{SEED}-train-{sig}")
    write_toy_bench(tmp_path / "toy.jsonl", 16)
    run, steps = tmp_path / "run", 4
    rng_step = rng.randrange(1, steps)
    args = ["rl-gen", *toy_args(primed_model_dir, tmp_path, run, steps=steps), *SMALL, "trainer.save_every=1",
            "trainer.eval_every=0", "trainer.probe_every=0"]
    points = {"started": lambda: (run / "run.json").exists(),
              "a step logged": lambda: lines(run / "metrics.jsonl") >= rng_step,
              "checkpoint 2": lambda: (run / "checkpoints" / "step_000002" / "trainer_state.json").exists()}
    point = rng.choice(sorted(points))
    proc = cli(args)
    hit(proc, points[point], sig, rng)
    finish(resume_after(proc, sig, args))
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, steps + 1)), f"CHAOS_SEED={SEED}, point {point}"
    rollouts = sorted((run / "rollouts").glob("step_*.jsonl"))
    assert [p.name for p in rollouts] == [f"step_{i:06d}.jsonl" for i in range(1, steps + 1)]
    assert len({lines(p) for p in rollouts}) == 1  # no step's rollouts written twice
    assert (run / "checkpoints" / f"step_{steps:06d}" / "trainer_state.json").exists()
    assert not (run / "run.lock.json").exists()  # released at the end


# --- a full disk ------------------------------------------------------------------------------------------------


def run_in_process(args: list[str]):
    """The CLI in this process, with ``sys.argv`` as the console script would set it (the resume command is
    built from it)."""
    with mock.patch.object(sys, "argv", ["verireason", *args]):
        return CliRunner().invoke(app, args)


def disk_full_then_resume(args: list[str], run: Path) -> tuple[list[str], str]:
    """The failed command's output is one line naming the cause and the resume command: (that command, the line)."""
    result = run_in_process(args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
    assert len(line) == 1 and line[0].startswith("error: no space left on the device"), result.output
    assert f"what finished is saved in {run}" in line[0] and "continue with: verireason " in line[0]
    return shlex.split(line[0].split("continue with: verireason ", 1)[1]), line[0]


def test_disk_full_in_the_writer_is_one_line_then_resume_completes(tiny_model_dir, tmp_path, monkeypatch):
    from verireason.tracking import RecordLog

    run, real_append, calls = tmp_path / "run", RecordLog.append, []

    def append_until_full(self, records):
        calls.append(1)
        if len(calls) == 4:  # half a line reaches the disk, then it is full
            with self.path.open("a") as handle:
                handle.write('{"bench": "arith", "problem_id": "ar')
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(self, records)

    monkeypatch.setattr(RecordLog, "append", append_until_full)
    resume, _ = disk_full_then_resume([*eval_args(tiny_model_dir, run), "engine.batch_size=4"], run)
    monkeypatch.setattr(RecordLog, "append", real_append)
    result = run_in_process(resume)
    assert result.exit_code == 0, result.output
    assert_eval_complete(run)


@pytest.fixture
def small_file_system(tmp_path):
    """A 4 MB tmpfs (needs root and a kernel that lets this process mount; skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs",
                                                        str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small file system here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(mount: Path, leave_kb: int) -> Path:
    """A file that leaves ``leave_kb`` KB free on ``mount``; delete it to free the space."""
    stats = os.statvfs(mount)
    filler = mount / "filler"
    filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - leave_kb * 1024))
    return filler


def test_a_real_full_file_system_is_one_line_then_resume_completes(tiny_model_dir, small_file_system):
    run, filler = small_file_system / "run", fill(small_file_system, 40)  # room for the config and a few batches
    resume, line = disk_full_then_resume(eval_args(tiny_model_dir, run), run)
    assert f"writing {run}{os.sep}" in line, line  # the file that could not be written
    filler.unlink()
    result = run_in_process(resume)
    assert result.exit_code == 0, result.output
    assert_eval_complete(run)


def test_a_disk_that_fills_during_a_checkpoint_is_one_line_then_resume_completes(primed_model_dir,
                                                                                   small_file_system):
    """torch's checkpoint writer loses the OSError of a full disk; the message is the same one line."""
    write_toy_bench(small_file_system / "toy.jsonl", 16)
    run, steps = small_file_system / "run", 2
    filler = fill(small_file_system, 600)  # room for the logs, not for the first checkpoint (about 1.4 MB)
    args = ["rl-gen", *toy_args(primed_model_dir, small_file_system, run, steps=steps), *SMALL,
            "trainer.save_every=1", "trainer.eval_every=0", "trainer.probe_every=0"]
    resume, line = disk_full_then_resume(args, run)
    assert "(no checkpoint yet: resume starts over)" in line, line
    filler.unlink()
    result = run_in_process(resume)
    assert result.exit_code == 0, result.output
    logged = [json.loads(row)["step"] for row in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, steps + 1))
    assert (run / "checkpoints" / f"step_{steps:06d}" / "trainer_state.json").exists()
