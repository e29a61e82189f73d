"""Paper 2 miniature data (experiments/paper2/make_sft_data.py, make_oracle_data.py): the recompute feedback, the
wrong variant whose slip is inside the work, random student verdicts, and the oracle records' true verdicts."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import pytest

from verireason import arith

sys.path.insert(0, str(Path(__file__).parents[1] / "experiments" / "paper2"))
import comparison_use  # noqa: E402
import make_oracle_data  # noqa: E402
import make_sft_data  # noqa: E402

PROBLEMS = arith.generate(200, 3, [1, 2, 3])


def _boxed(text: str) -> str:
    return re.findall(r"\\boxed\{([^{}]*)\}", text)[-1]


@pytest.mark.parametrize("seed", range(5))
def test_wrong_work_moves_the_last_step_and_the_answer_together(seed):
    rng = random.Random(seed)
    for p in PROBLEMS:
        wrong = make_sft_data.wrong_work(p.solution, p.answer, rng)
        *steps, last = wrong.splitlines()
        *ref_steps, _ = p.solution.splitlines()
        assert steps[:-1] == ref_steps[:-1]  # the slip is in the last step only
        result = make_sft_data.EQUATION.findall(steps[-1])[-1].split("= ")[-1]
        assert result == _boxed(wrong) != p.answer  # the work agrees with the wrong answer
        assert int(result) > 0 and abs(int(result) - int(p.answer)) <= 3
        assert f"has {result} " in last


def test_recompute_redoes_every_reference_step_beside_the_claimed_answer():
    for p in PROBLEMS:
        equations = make_sft_data.EQUATION.findall(p.solution)
        assert len(equations) >= int(p.level)  # every operation's arithmetic is found
        said = make_sft_data.recompute(p.solution, p.answer, "so \\boxed{12} or rather \\boxed{ 7 }")
        assert said == (f"Recomputing each step: {', '.join(equations)}. My result is {p.answer}; "
                        "the solution's answer is 7.")
    assert make_sft_data.recompute(PROBLEMS[0].solution, "5", "no box here").endswith("answer is missing.")


def test_warm_up_student_verdicts_are_random_and_informed_ones_are_told(tmp_path):
    out = tmp_path / "sft.jsonl"
    make_sft_data.main(out, 96)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    student = [r for r in rows if "Verdict:" in r["completion"] and "checked against the reference" not in r["prompt"]]
    informed = [r for r in rows if "checked against the reference" in r["prompt"]]
    assert len(rows) == 288 and len(student) == len(informed) == 96

    def agree(r: dict) -> bool:  # the verdict says what the recomputation shows
        mine, theirs = re.search(r"My result is (\S+); the solution's answer is (\S+)\.", r["completion"]).groups()
        return ("\\boxed{Yes}" in r["completion"]) == (mine == theirs)

    assert all(agree(r) for r in informed)
    assert all(("\\boxed{Yes}" in r["completion"]) == ("it is correct." in r["prompt"]) for r in informed)
    assert not any("My result" in r["completion"] for r in student)  # the comparison is the informed self's

    def right(r: dict) -> bool:  # the student's candidate ends in the recomputation's result
        result = make_sft_data.EQUATION.findall(r["completion"])[-1].split("= ")[-1]
        return _boxed(r["prompt"].split("Solution: ")[1].split("\nCheck the solution")[0]) == result

    assert 0.3 < sum(right(r) for r in student) / len(student) < 0.7  # both kinds of candidate
    said_yes = ["\\boxed{Yes}" in r["completion"] for r in student]
    assert 0.3 < sum(y == right(r) for y, r in zip(said_yes, student)) / len(student) < 0.7  # chance, not judgement


def test_generic_feedback_keeps_the_fixed_sentences(tmp_path):
    out = tmp_path / "sft.jsonl"
    make_sft_data.main(out, 16, feedback="generic")
    verdicts = [json.loads(line)["completion"] for line in out.read_text().splitlines()]
    verdicts = [c for c in verdicts if "Verdict:" in c]
    assert verdicts and all(c.split("\n")[0] in make_sft_data.FEEDBACK for c in verdicts)


def test_oracle_records_carry_the_true_verdict_and_balance_it(tmp_path):
    cand = tmp_path / "cand"
    cand.mkdir()
    (cand / "config.yaml").write_text("bench:\n  arith:\n    generator: arith\n    size: 200\n    seed: 0\n"
                                      "    levels: [1]\nlimit: 4\ndata_dir: null\n")
    problems = arith.generate(4, 0, [1])
    rows = []
    for p in problems:
        for k, claimed in enumerate([p.answer, str(int(p.answer) + 1), str(int(p.answer) + 2)]):
            rows.append({"bench": "arith", "problem_id": p.id, "problem": p.problem, "sample_index": k,
                         "completion": f"Work.\nThe answer is \\boxed{{{claimed}}}.", "correct": claimed == p.answer})
    (cand / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "oracle.jsonl"
    make_oracle_data.main(cand, out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    yes = [r for r in records if r["completion"].endswith("\\boxed{Yes}")]
    assert len(records) == 16 and len(yes) == 8  # 4 right attempts repeated up to the 8 wrong ones
    for r in records:
        mine, theirs = re.search(r"My result is (\S+); the solution's answer is (\S+)\.", r["completion"]).groups()
        assert (mine == theirs) == r["completion"].endswith("\\boxed{Yes}")
        assert "Solution: Work." in r["prompt"] and "reference" not in r["prompt"]


def test_comparison_use_counts_verdicts_that_follow_the_comparison(tmp_path):
    said = ["Recomputing each step: 3 + 4 = 7. My result is 7; the solution's answer is 7.\nVerdict: \\boxed{Yes}",
            "Recomputing each step: 3 + 4 = 7. My result is 7; the solution's answer is 8.\nVerdict: \\boxed{Yes}",
            "Recomputing each step: 3 + 4 = 7. My result is 7; the solution's answer is 8.\nVerdict: \\boxed{No}",
            "Recomputing each step: 3 + 4 = 7.\nVerdict: \\boxed{No}"]
    assert comparison_use.comparison_use(said) == (0.75, 2 / 3, 4)
    assert comparison_use.comparison_use(said[3:]) == (0.0, None, 1)
    rollouts = tmp_path / "stv-opd" / "rollouts"
    rollouts.mkdir(parents=True)
    for step, rows in enumerate([said[3:]] * 5 + [said[:3]] * 5, 1):
        (rollouts / f"step_{step:06d}.jsonl").write_text("".join(json.dumps({"completion": c}) + "\n" for c in rows))
    table = comparison_use.main(tmp_path)
    assert "| opd | 0.00 → 1.00 | – → 0.67 | 5 / 15 |" in table and (tmp_path / "comparison_use.md").exists()
