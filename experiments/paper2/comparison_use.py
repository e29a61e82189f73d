"""Does the student use its informed self's rule? Per training step of each verifier run of ``run_small.sh``: the
share of the student's own verifications that write the comparison ("My result is X; the solution's answer is Y."),
which only the informed prompt's warm-up has, and among those the share whose verdict follows it (Yes exactly when
X equals Y). A student that imitates its informed self raises both; one that only shifts its Yes rate does not.

Reads ``stv-<method>/rollouts/step_*.jsonl`` (the student's sampled verifications) and writes
``comparison_use.md`` into the run folder: per method, steps 1-5 against the last 5 steps. ``sft`` keeps no rollouts
(it trains on its informed teacher's verifications), so it has no row.

Usage: python experiments/paper2/comparison_use.py results/paper2-small
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

COMPARISON = re.compile(r"My result is (\S+?); the solution's answer is (\S+?)\.\s*\n?Verdict: \\boxed\{(Yes|No)\}")
METHODS = ("verdict_rl", "opd", "stv")  # sft trains on its teacher's samples and keeps no rollouts of the student


def comparison_use(completions: list[str]) -> tuple[float, float | None, int]:
    """(share that write the comparison, share of those whose verdict follows it or None, verifications)."""
    found = [m for m in (COMPARISON.search(c) for c in completions) if m]
    follows = [(m.group(1) == m.group(2)) == (m.group(3) == "Yes") for m in found]
    share = len(found) / len(completions) if completions else 0.0
    return share, (sum(follows) / len(follows) if follows else None), len(completions)


def _rate(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _completions(files: list[Path]) -> list[str]:
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    return [r["completion"] for r in rows]


def main(root: Path, window: int = 5) -> str:
    lines = [f"| verifier | writes the comparison, steps 1-{window} → last {window} | verdict follows it, "
             f"steps 1-{window} → last {window} | verifications per window |", "|---|---|---|---|"]
    for method in METHODS:
        files = sorted((root / f"stv-{method}" / "rollouts").glob("step_*.jsonl"))
        if not files:
            continue
        first, last = comparison_use(_completions(files[:window])), comparison_use(_completions(files[-window:]))
        lines.append(f"| {method} | {_rate(first[0])} → {_rate(last[0])} | {_rate(first[1])} → {_rate(last[1])} | "
                     f"{first[2]} / {last[2]} |")
    text = "\n".join(lines) + "\n"
    (root / "comparison_use.md").write_text(text)
    return text


if __name__ == "__main__":
    print(main(Path(sys.argv[1])), end="")
