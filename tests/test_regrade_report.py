"""experiments/regrade_report.py: the same completions regraded with another grader, pass@1 under both."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import regrade_report  # noqa: E402


def test_a_verification_after_the_answer_scores_under_math_verify_only(tmp_path, capsys):
    # an S²R-style response: the boxed answer, then more than 200 characters of verification
    s2r = "12 + 7 = 19. The answer is \\boxed{19}.\n\nWait, let me recheck my solution.\n\n" + "Checking. " * 30
    plain = "12 + 7 = 19. The answer is \\boxed{19}."
    folder = tmp_path / "evals" / "x_final-solve-abc"
    folder.mkdir(parents=True)
    rows = [{"problem_id": "p0", "completion": s2r, "gold": "19", "correct": False},
            {"problem_id": "p1", "completion": plain, "gold": "19", "correct": True}]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "evals" / "x_final-vr_loop-abc").mkdir()  # not regradable: skipped
    regrade_report.main([str(tmp_path), "--grader", "math_verify"])
    out = capsys.readouterr().out
    assert "vr_loop" not in out
    assert "| x_final-solve-abc | 2 | 50.0 " in out and "| 100.0 [100.0, 100.0] |" in out
    regrade_report.main([str(tmp_path), "--grader", "dapo_strict"])
    assert "| x_final-solve-abc | 2 | 50.0 [0.0, 100.0] | 50.0 [0.0, 100.0] |" in capsys.readouterr().out
