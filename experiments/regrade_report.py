"""Regrade a ``verireason report``'s finished solve and S²R-attempt evaluations with another grader, without sampling.

Why: paper 1's strict grader (``dapo_strict``) reads a ``\\boxed{}`` only in the last 200 of the last 300 characters
of a response, its released rule. An S²R response puts a verification *after* its answer, so under that grader a
right S²R answer scores 0; ``math_verify`` reads the last box of the whole response. This script regrades the same
completions with ``--grader`` and prints pass@1 per model under both graders, with 95% bootstrap intervals over
problems, so the two can be compared on identical samples. (V-R loops cannot be regraded: the verifier was shown the
grader's extraction of each answer.)

Usage: python experiments/regrade_report.py results/report-small [--grader math_verify]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from verireason.grading import Grader
from verireason.metrics import bootstrap_mean


def per_problem(rows: list[dict], correct: list[bool]) -> list[float]:
    """Mean correctness per problem, in problem order."""
    by_problem: dict[str, list[bool]] = defaultdict(list)
    for row, ok in zip(rows, correct):
        by_problem[row["problem_id"]].append(ok)
    return [sum(v) / len(v) for _, v in sorted(by_problem.items())]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--grader", default="math_verify")
    args = parser.parse_args(argv)
    grader = Grader(args.grader)
    print(f"| evaluation | samples | pass@1 as graded [95% CI] | pass@1 with {args.grader} [95% CI] |")
    print("|---|---|---|---|")
    try:
        for folder in sorted((args.report_dir / "evals").iterdir()):
            if "-solve-" not in folder.name and "-s2r_attempts-" not in folder.name:
                continue
            rows = [json.loads(x) for x in (folder / "samples.jsonl").read_text().splitlines() if x.strip()]
            regraded = [g.correct for g in grader.grade_many([(r["completion"], r["gold"]) for r in rows])]
            cells = [bootstrap_mean(per_problem(rows, c)) for c in ([r["correct"] for r in rows], regraded)]
            print(f"| {folder.name} | {len(rows)} | " +
                  " | ".join(f"{100 * m:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]" for m, lo, hi in cells) + " |")
    finally:
        grader.close()


if __name__ == "__main__":
    main()
