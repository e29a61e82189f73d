"""One writer per run directory, counts that repeats cannot inflate, and the one-line messages' pieces."""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from verireason.interrupts import Interrupted, deferred, environment_failure, handled, resume_command
from verireason.records import Sample
from verireason.runlock import HOLDER_FILE, RunLock, RunLocked
from verireason.tracking import RecordLog, read_metrics

HOLD = """
import sys, time
from verireason.runlock import RunLock
lock = RunLock(sys.argv[1], ["verireason", "eval", "--out", sys.argv[1]]).acquire()  # kept: a lock dropped is released
print("held", flush=True)
time.sleep(600)
"""


def holder(run: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(tmp_path):
    run = tmp_path / "run"
    proc = holder(run)
    try:
        with pytest.raises(RunLocked, match=rf"{run} is in use by pid {proc.pid} on .*: verireason eval --out"):
            RunLock(run).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)  # no handler runs: the kernel drops the lock
        proc.wait()
    assert (run / HOLDER_FILE).exists()  # the dead holder's name is left behind …
    lock = RunLock(run, ["verireason", "eval"]).acquire()  # … and its lock is taken over
    assert json.loads((run / HOLDER_FILE).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (run / HOLDER_FILE).exists()


def test_only_rank_0_locks_under_a_launcher(tmp_path, monkeypatch):
    from verireason import ending

    run = tmp_path / "run"
    proc = holder(run)
    try:
        monkeypatch.setenv("RANK", "1")
        ending.hold(run)  # another rank of the same run: no lock, no refusal
        assert ending.Run.lock is None and ending.Run.dir == run
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(RunLocked):
            ending.hold(run)
    finally:
        ending.Run.dir = ending.Run.lock = None
        proc.kill()
        proc.wait()


def sample(pid: str, index: int, completion: str = "x") -> Sample:
    return Sample(bench="b", problem_id=pid, sample_index=index, prompt="", completion=completion, extracted=None,
                  correct=False, formatted=False, tokens=1, finish_reason="stop", gold="1")


def test_repeated_records_count_once_and_resume_repairs_the_file(tmp_path, capsys):
    log = RecordLog(tmp_path / "samples.jsonl", Sample)
    log.append([sample("p1", 0, "first"), sample("p1", 1), sample("p2", 0)])
    log.append([sample("p1", 0, "second writer"), sample("p1", 1)])  # what two writers used to leave
    read = log.read()
    assert [(s.problem_id, s.sample_index) for s in read] == [("p1", 0), ("p1", 1), ("p2", 0)]
    assert read[0].completion == "first"
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and "holds 2 repeated record(s) (b/p1/0, b/p1/1; key bench/problem_id/sample_index)" in note[0]
    # with n = 2, p1 has two distinct samples (complete) and p2 one: the repeats no longer make a group look complete
    assert log.keep_complete(2) == {("b", "p1")}
    assert log.path.read_text().count("\n") == 2
    capsys.readouterr()
    log.read()
    assert capsys.readouterr().err == ""  # repaired: nothing left to note


def test_a_group_of_repeats_is_not_complete(tmp_path):
    log = RecordLog(tmp_path / "samples.jsonl", Sample)
    log.append([sample("p1", 0), sample("p1", 0)])
    assert log.keep_complete(2) == set()


def test_metrics_count_each_step_once(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": v}) + "\n" for s, v in [(1, 0.5), (2, 0.4), (2, 9.0)]))
    assert [(r["step"], r["loss"]) for r in read_metrics(path)] == [(1, 0.5), (2, 0.4)]
    assert "step(s) 2 more than once" in capsys.readouterr().err


def test_resume_command_puts_out_and_resume_after_the_command():
    argv = ["/x/bin/verireason", "eval", "--model", "m", "--out=old", "--resume", "sampling.n=2", "prompt.user='a b'"]
    assert shlex.split(resume_command(argv, Path("results/eval/run 1"))) == [
        "verireason", "eval", "--out", "results/eval/run 1", "--resume", "--model", "m", "sampling.n=2",
        "prompt.user='a b'"]
    argv = ["verireason", "rl-gen", "--out", "r", "--steps", "4"]
    assert resume_command(argv, Path("r")) == "verireason rl-gen --out r --resume --steps 4"
    assert resume_command(["verireason", "report", "a", "--out", "o"], Path("o")) == "verireason report a --out o"


def test_environment_failures_are_recognised_through_wrappers():
    full = OSError(errno.ENOSPC, "No space left on device", "/r/samples.jsonl")
    assert environment_failure(full) == ("no space left on the device", "/r/samples.jsonl")
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed") from exc
    except RuntimeError as wrapped:
        assert environment_failure(wrapped)[0] == "no space left on the device"
    assert environment_failure(RuntimeError("[enforce fail] No space left on device")) is not None
    assert environment_failure(OSError(errno.EROFS, "Read-only file system"))[0] == "the file system is read-only"
    assert environment_failure(ValueError("a bug")) is None
    assert environment_failure(OSError(errno.ENOENT, "No such file")) is None


def test_a_signal_during_a_write_waits_for_the_write():
    written = []
    with handled():
        with pytest.raises(Interrupted) as info:
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler has run by now, and deferred the signal
                written.append("whole record")
        assert info.value.exit_code == 143
        with pytest.raises(Interrupted) as info:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        assert info.value.exit_code == 130
    assert written == ["whole record"]


def test_the_saved_note_says_what_resume_redoes(tmp_path):
    from verireason.interrupts import saved_note

    assert saved_note(None) == "no run directory was made"
    assert saved_note(tmp_path, interrupted=True).endswith("(the batch in flight was dropped)")
    assert saved_note(tmp_path).endswith("(a cut-off last line is dropped on resume)")
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    assert saved_note(tmp_path).endswith("(no checkpoint yet: resume starts over)")
    for step, complete in ((2, True), (10, True), (12, False)):  # step 12 was being written
        folder = tmp_path / "checkpoints" / f"step_{step:06d}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert saved_note(tmp_path).endswith("(resume starts from checkpoints/step_000010)")


def test_a_samples_file_judged_again_counts_each_sample_once(tmp_path, capsys):
    from verireason.data import read_responses

    rows = [{"bench": "b", "problem_id": "p1", "sample_index": i, "problem": "q", "completion": c, "gold": "1",
             "correct": c == "1"} for i, c in ((0, "1"), (1, "2"), (0, "1"))]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    [(bench, problem, responses, labels)] = read_responses(path)
    assert (bench, problem.id, responses, labels) == ("b", "p1", ["1", "2"], [True, False])
    assert "holds 1 repeated sample(s) (b/p1/0)" in capsys.readouterr().err


def test_report_into_a_folder_in_use_is_refused(tmp_path, tiny_model_dir):
    from typer.testing import CliRunner

    from verireason.cli import app

    out = tmp_path / "report"
    proc = holder(out)
    try:
        result = CliRunner().invoke(app, ["report", str(tiny_model_dir), "--bench", "arith", "--limit", "2",
                                          "--out", str(out)])
    finally:
        proc.kill()
        proc.wait()
    assert result.exit_code == 2, result.output
    assert f"{out} is in use by pid {proc.pid}" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (out / "config.yaml").exists()


def test_a_failure_that_names_no_cause_counts_as_a_full_disk_where_the_disk_is_full(tmp_path, monkeypatch):
    from types import SimpleNamespace

    lost = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 643776 vs 643728")
    assert environment_failure(lost, tmp_path) is None  # a disk with room: a bug, left to its traceback
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_bavail=3, f_frsize=4096))
    assert environment_failure(lost, tmp_path) == ("no space left on the device", None)
    assert environment_failure(lost) is None  # no run directory: nothing to look at
