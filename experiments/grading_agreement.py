"""Agreement of our graders with the Qwen2.5-Math toolkit's labels on 800 real responses.

Data: ``shared/benchmarks/qwen25math_math_cot_samples.jsonl`` (100 MATH problems × 8 responses of a Qwen2.5-Math
instruct model, each labelled correct/incorrect by the toolkit's grader). Prints the agreement of each grader and
every disagreement, so a reader can judge who is right.

Run: ``python experiments/grading_agreement.py [--data ../shared/benchmarks/qwen25math_math_cot_samples.jsonl]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from verireason.grading import GRADERS, Grader

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "qwen25math_math_cot_samples.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.open()]
    items = [(resp, row["answer"]) for row in rows for resp in row["responses"]]
    labels = [label for row in rows for label in row["correct"]]
    ids = [f"{row['id']}#{i}" for row in rows for i in range(len(row["responses"]))]
    for name in GRADERS:
        grader = Grader(name)
        start = time.perf_counter()
        grades = grader.grade_many(items)
        seconds = time.perf_counter() - start
        grader.close()
        agree = sum(g.correct == label for g, label in zip(grades, labels))
        print(f"{name}: {agree}/{len(labels)} = {agree / len(labels):.2%} agreement ({seconds:.1f} s)")
        for g, label, sid, (_, gold) in zip(grades, labels, ids, items):
            if g.correct != label:
                print(f"  {sid}: gold {gold!r}, extracted {g.extracted!r}, ours {g.correct}, toolkit {label}")


if __name__ == "__main__":
    main()
