"""experiments/premises.py: each premise check measures from a run's files, holds or fails by its threshold (exit 0
or 3) and records what it found."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import premises  # noqa: E402

from verireason.records import Sample  # noqa: E402


def _samples(folder: Path, correct: list[list[bool]], name: str = "samples.jsonl") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [Sample(bench="arith", problem_id=f"p{i}", sample_index=k, prompt="", completion="", extracted="1",
                   correct=c, formatted=True, tokens=5, finish_reason="stop", gold="1")
            for i, cs in enumerate(correct) for k, c in enumerate(cs)]
    (folder / name).write_text("".join(json.dumps(asdict(r)) + "\n" for r in rows))


@pytest.mark.parametrize("correct,code", [([[True, False]] * 10, 0), ([[True, True, True, False]] * 10, 3),
                                          ([[False] * 4] * 10, 3)])
def test_accuracy_premise(tmp_path, correct, code):
    _samples(tmp_path / "eval", correct)
    record = tmp_path / "premise.json"
    assert premises.main(["accuracy", str(tmp_path / "eval"), "--record", str(record)]) == code
    found = json.loads(record.read_text())
    assert found["holds"] == (code == 0) and found["problems"] == 10
    assert found["ci_low"] <= found["accuracy"] <= found["ci_high"]


def test_mixed_premise_counts_problems_with_disagreeing_samples(tmp_path):
    _samples(tmp_path / "eval", [[True, False]] * 3 + [[True, True]] * 4 + [[False, False]] * 3)
    record = tmp_path / "m.json"
    assert premises.main(["mixed", str(tmp_path / "eval"), "--min-share", "0.3", "--record", str(record)]) == 0
    assert json.loads(record.read_text())["mixed_share"] == pytest.approx(0.3)
    assert premises.main(["mixed", str(tmp_path / "eval"), "--min-share", "0.4"]) == 3


def test_bi_data_premise_counts_trajectories_with_a_correction(tmp_path):
    (tmp_path / "data_summary.json").write_text(json.dumps(
        {"trajectories": 320, "trajectories_by_wrong_attempts": {"0": 200, "1": 90, "2": 30}}))
    assert premises.main(["bi-data", str(tmp_path), "--min-trajectories", "300", "--min-corrections", "100"]) == 0
    assert premises.main(["bi-data", str(tmp_path), "--min-trajectories", "300", "--min-corrections", "121"]) == 3


def _attempts(folder: Path, pairs: list[tuple[bool | None, bool]]) -> None:
    """One response per verification pair: (verdict, truth of the attempt it judged)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "attempts.jsonl").write_text("".join(json.dumps(
        {"bench": "arith", "problem_id": f"p{i}", "sample_index": 0, "verdicts": [c], "verified_correct": [t]}) + "\n"
        for i, (c, t) in enumerate(pairs)))


def test_recall_premise_needs_recall_and_discrimination(tmp_path):
    # 10 wrong attempts, 6 flagged; 10 right ones, 8 accepted, 1 unparseable: recall 0.6, TPR 0.8, balanced 0.7
    _attempts(tmp_path, [(False, False)] * 6 + [(True, False)] * 4 + [(True, True)] * 8 + [(False, True), (None, True)])
    record = tmp_path / "r.json"
    assert premises.main(["recall", str(tmp_path), "--min-recall", "0.6", "--record", str(record)]) == 0
    found = json.loads(record.read_text())
    assert found["error_recall"] == pytest.approx(0.6) and found["tpr"] == pytest.approx(0.8)
    assert found["balanced_accuracy"] == pytest.approx(0.7) and found["verifications"] == 20
    assert found["balanced_ci_low"] <= 0.7 <= found["balanced_ci_high"]
    assert premises.main(["recall", str(tmp_path), "--min-recall", "0.61"]) == 3
    assert premises.main(["recall", str(tmp_path), "--min-recall", "0.6", "--min-balanced", "0.71"]) == 3


def test_recall_premise_fails_a_constant_incorrect(tmp_path):
    _attempts(tmp_path, [(False, False)] * 10 + [(False, True)] * 10)  # recall 1.0, judges nothing
    record = tmp_path / "r.json"
    assert premises.main(["recall", str(tmp_path), "--record", str(record)]) == 3
    assert json.loads(record.read_text())["error_recall"] == 1.0


@pytest.mark.parametrize("after,code", [([[True, True]] * 16 + [[False, False]] * 4, 0),
                                        ([[True, False]] * 10 + [[True, True]] * 2 + [[False, False]] * 8, 3)])
def test_pilot_premise_needs_a_paired_gain_above_its_interval(tmp_path, after, code):
    run = tmp_path / "run"
    _samples(run / "eval", [[True, False]] * 20, "step_000000.jsonl")
    _samples(run / "eval", after, "step_000010.jsonl")
    record = tmp_path / "p.json"
    assert premises.main(["pilot", str(run), "--record", str(record)]) == code
    found = json.loads(record.read_text())
    assert found["problems"] == 20 and found["first"] == 0.5 and found["last_step"] == "step_000010"
    assert premises.main(["pilot", str(tmp_path / "none")]) == 3  # no evaluations: fails, says why


@pytest.mark.parametrize("balanced,low,code", [(0.72, 0.58, 0), (0.64, 0.47, 3), (0.55, 0.51, 3)])
def test_vil_verifier_premise_needs_a_verifier_above_chance(tmp_path, monkeypatch, balanced, low, code):
    judged = []

    def measured(model, candidates, per_label, max_tokens, prompts):
        judged.append(prompts)
        return {"student_balanced_accuracy": balanced, "student_ci_low": low, "student_ci_high": 0.9,
                "student_unparseable": 0.0, "student_tpr": 0.7, "student_tnr": 0.6, "candidates": 39}

    monkeypatch.setattr(premises, "_judged", measured)
    record = tmp_path / "vil.json"
    assert premises.main(["verifier", "ckpt", "--candidates", "cands", "--record", str(record)]) == code
    found = json.loads(record.read_text())
    assert judged == [("student",)] and found["premise"] == "verifier" and found["balanced_accuracy"] == balanced
    assert found["holds"] is (code == 0) and "0.6" in found["needs"]
