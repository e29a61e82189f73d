"""Grading throughput: responses graded per second by one math-verify worker and by the default pool.

Workload: the 800 real Qwen2.5-Math responses of ``shared/benchmarks/qwen25math_math_cot_samples.jsonl``, repeated
to ``--total`` responses, graded with the memo cache off so every response really goes through math-verify. Worker
start-up is excluded (each grader grades one response before the clock starts). Appends a section to
``docs/benchmarks.md`` unless ``--no-write``.

Run: ``python experiments/bench_grading.py [--total 4000] [--workers 1,2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime
from pathlib import Path

from verireason.grading import Grader, default_workers, extract_answer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "benchmarks" / "qwen25math_math_cot_samples.jsonl"
DOC = ROOT / "docs" / "benchmarks.md"


def load(path: Path, total: int) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.open()]
    items = [(resp, row["answer"]) for row in rows for resp in row["responses"]]
    return (items * (total // len(items) + 1))[:total]


def measure(items: list[tuple[str, str]], workers: int) -> tuple[float, list[bool]]:
    """Seconds to grade ``items`` with a pool of ``workers`` (started before the clock), and the verdicts."""
    grader = Grader("math_verify", workers=workers)
    grader.checker.cache = False
    grader.grade_many(items[:1] * workers * grader.checker.chunk)  # start every worker outside the timed region
    start = time.perf_counter()
    verdicts = [g.correct for g in grader.grade_many(items)]
    seconds = time.perf_counter() - start
    grader.close()
    return seconds, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--total", type=int, default=4000)
    parser.add_argument("--workers", default=f"1,{default_workers()}", help="comma list of pool sizes")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    items = load(args.data, args.total)
    checked = sum(extract_answer(r)[0] is not None for r, _ in items)
    rows, reference = [], None
    for workers in dict.fromkeys(int(w) for w in args.workers.split(",")):
        seconds, verdicts = measure(items, workers)
        reference = reference or verdicts
        rows.append((workers, seconds, verdicts == reference))
        print(f"{workers} worker(s): {len(items)} responses in {seconds:.1f} s = {len(items) / seconds:.0f}/s")
    if not args.no_write:
        report(rows, len(items), checked)


def report(rows, total: int, checked: int) -> None:
    base = rows[0][1]
    lines = [f"\n## Grading throughput, {datetime.now():%Y-%m-%d %H:%M}\n",
             f"Machine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores. Workload: the 800 Qwen2.5-Math "
             f"responses repeated to {total} ({checked} with an extracted answer, sent to math-verify), memo cache "
             "off, worker start-up excluded.",
             "Command: `python experiments/bench_grading.py`\n",
             "| workers | seconds | responses/s | vs 1 worker | same verdicts |", "|---|---|---|---|---|"]
    lines += [f"| {w} | {s:.1f} | {total / s:.0f} | {base / s:.2f}× | {'yes' if same else 'NO'} |"
              for w, s, same in rows]
    with DOC.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
