"""experiments/paper1/plot_small.py: the asymmetry figure and table are computed from the probe's and the runs' own
files: accuracies, balanced accuracies and their intervals, lengths, and paired changes over the same problems."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "paper1"))
import plot_small  # noqa: E402

from verireason.records import Sample, Verdict  # noqa: E402


def _write(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(asdict(r)) + "\n" for r in rows))


def _samples(correct: list[list[bool]], tokens: int) -> list[Sample]:
    return [Sample(bench="arith", problem_id=f"p{i}", sample_index=k, prompt="", completion="", extracted="1",
                   correct=c, formatted=True, tokens=tokens, finish_reason="stop", gold="1")
            for i, cs in enumerate(correct) for k, c in enumerate(cs)]


def _verdicts(claims_truths: list[tuple[bool | None, bool]]) -> list[Verdict]:
    return [Verdict(bench="arith", problem_id=f"p{i}", sample_index=0, verify_index=0, prompt="", verification="",
                    tokens=3, finish_reason="stop", claimed=c, truth=t) for i, (c, t) in enumerate(claims_truths)]


def test_rows_table_and_figure_from_probe_files(tmp_path):
    step0, step5 = tmp_path / "probe-rl-gen" / "step_000000", tmp_path / "probe-rl-gen" / "step_000005"
    _write(step0 / "samples.jsonl", _samples([[True, False]] * 10, tokens=40))
    _write(step0 / "verifications.jsonl", _verdicts([(True, True)] * 4 + [(True, False)] * 4))  # always "Yes"
    _write(step5 / "samples.jsonl", _samples([[True, True]] * 10, tokens=30))
    _write(step5 / "verifications.jsonl", _verdicts([(True, True)] * 3 + [(None, True)] + [(False, False)] * 4))
    _write(tmp_path / "rl-gen" / "eval" / "step_000000.jsonl", _samples([[False, False]] * 8, tokens=1))
    _write(tmp_path / "rl-gen" / "eval" / "step_000010.jsonl", _samples([[True, False]] * 8, tokens=1))

    rows = plot_small.probe_rows(tmp_path, "rl-gen")
    assert [r["step"] for r in rows] == [0, 5]
    assert rows[0]["gen"] == pytest.approx(0.5) and rows[0]["gen_lo"] == rows[0]["gen_hi"] == pytest.approx(0.5)
    assert rows[0]["ba"] == pytest.approx(0.5) and (rows[0]["tpr"], rows[0]["tnr"]) == (1.0, 0.0)
    assert rows[1]["ba"] == pytest.approx((0.75 + 1.0) / 2)  # an unparseable verdict counts as wrong
    assert rows[1]["ba_lo"] < rows[1]["ba"] <= rows[1]["ba_hi"]
    assert (rows[0]["tokens"], rows[1]["tokens"]) == (40, 30)

    figure = plot_small.main(tmp_path)
    assert figure.is_file() and figure.stat().st_size > 10_000
    table = (tmp_path / "summary.md").read_text()
    assert "| rl-gen | 5 | 1.000 [1.000, 1.000] | 0.875" in table
    assert "+50.0 [+50.0, +50.0] (10 problems)" in table  # probe: 0.5 → 1.0 on every problem
    assert "+50.0 [+50.0, +50.0] (8 problems), step_000000 → step_000010" in table  # the run's own evaluations
    assert "| rl-verify | – | – |" in table  # a run that has not been probed is a dash, not an error
    assert "| rl-gen | -10.0 [-10.0, -10.0] tokens (10 problems) | – | – |" in table  # 40 → 30 tokens
