"""Rewrites of results files are atomic: a kill between writing and renaming leaves the old file whole."""

from __future__ import annotations

import json

import pytest

from verireason import files
from verireason.records import Sample
from verireason.tracking import RecordLog, RunLog, write_summary


def sample(pid: str, index: int) -> Sample:
    return Sample(bench="b", problem_id=pid, sample_index=index, prompt="p", completion="c", extracted="1",
                  correct=True, formatted=True, tokens=3, finish_reason="stop", gold="1")


class Killed(BaseException):
    """Stands for SIGKILL between writing the temporary file and renaming it."""


@pytest.fixture
def killed_at_rename(monkeypatch):
    def die(src, dst):
        raise Killed

    monkeypatch.setattr(files.os, "replace", die)


def test_write_atomic_replaces_the_content(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    files.write_atomic(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_write_atomic_killed_before_rename_keeps_the_old_file(tmp_path, killed_at_rename):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(Killed):
        files.write_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_keep_complete_drops_a_cut_line_and_short_groups_keeping_the_rest_byte_for_byte(tmp_path):
    log = RecordLog(tmp_path / "samples.jsonl")
    log.append([sample("a", 0), sample("a", 1), sample("b", 0)])
    kept = (tmp_path / "samples.jsonl").read_text().splitlines(keepends=True)[:2]
    with (tmp_path / "samples.jsonl").open("a") as handle:
        handle.write('{"bench": "b", "problem_id": "b", "sam')  # killed mid-line
    assert log.keep_complete(2) == {("b", "a")}
    assert (tmp_path / "samples.jsonl").read_text() == "".join(kept)


def test_keep_complete_killed_during_its_rewrite_loses_no_sample(tmp_path, killed_at_rename):
    log = RecordLog(tmp_path / "samples.jsonl")
    log.append([sample("a", 0), sample("a", 1), sample("b", 0)])
    before = (tmp_path / "samples.jsonl").read_text()
    with pytest.raises(Killed):
        log.keep_complete(2)
    assert (tmp_path / "samples.jsonl").read_text() == before


def test_metrics_truncation_and_summaries_are_atomic(tmp_path, killed_at_rename):
    runlog = RunLog(tmp_path)
    for step in (1, 2, 3):
        runlog.log(step, {"loss": 0.5})
    before = runlog.metrics_path.read_text()
    with pytest.raises(Killed):
        runlog.truncate_after(1)
    assert runlog.metrics_path.read_text() == before
    (tmp_path / "summary.json").write_text('{"old": 1}')
    with pytest.raises(Killed):
        write_summary(tmp_path, {"b": {"accuracy": 1.0}}, "t")
    assert json.loads((tmp_path / "summary.json").read_text()) == {"old": 1}
