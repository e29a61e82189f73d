"""The learnability ceiling of the small paper-2 run: can the 135M student learn to judge these attempts at all?

Writes SFT records of the student verifier prompt (problem and attempt, no verdict, no reference) over the training
candidates of ``run_small.sh`` (an ``eval`` run's ``samples.jsonl``), each answered with the warm-up's kind of
feedback (``--feedback``, as in ``make_sft_data.py``: the recomputation of the problem's reference solution beside the
attempt's boxed answer, or a generic sentence) and the **grader's true verdict**. The minority label is repeated
until both labels are equally many, so a constant verdict learns nothing. Fine-tuning the warm-up model on them
(``sft-init``) and measuring the student prompt on the held-out candidates (``experiments/premises.py informed``)
bounds what any verifier training can reach from the same candidates: supervised on the truth itself, rather than on
a reward or a teacher's distribution.

Usage: python experiments/paper2/make_oracle_data.py results/paper2-small/cand-train OUT.jsonl [--feedback generic]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from verireason.config import compose, to_object

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from make_sft_data import verification_record  # noqa: E402 - the warm-up's own feedback and verdict line
from premises import candidate_problems  # noqa: E402


def main(candidates: Path, out: Path, feedback: str = "recompute", seed: int = 11) -> None:
    prompt, rng = to_object(compose("stv", [])).prompt, random.Random(seed)
    rows = [json.loads(line) for line in (candidates / "samples.jsonl").read_text().splitlines() if line.strip()]
    problems = {(bench, p.id): p for bench, p in candidate_problems(candidates)}
    by_label = {label: [r for r in rows if r["correct"] == label] for label in (True, False)}
    if not by_label[True] or not by_label[False]:
        raise SystemExit(f"{candidates}: the candidates need both right and wrong attempts")
    size = max(len(v) for v in by_label.values())
    records = []
    for label, attempts in by_label.items():
        for r in attempts + [rng.choice(attempts) for _ in range(size - len(attempts))]:
            user = prompt.verify_user.replace("{problem}", r["problem"]).replace("{response}", r["completion"])
            p = problems[(r["bench"], r["problem_id"])]
            records.append(verification_record(user, p, r["completion"], "Yes" if label else "No", rng, feedback))
    rng.shuffle(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    print(f"{len(records)} examples ({size} per verdict, from {len(rows)} candidates) -> {out}")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("candidates", type=Path)
    cli.add_argument("out", type=Path)
    cli.add_argument("--feedback", choices=("recompute", "generic"), default="recompute")
    args = cli.parse_args()
    main(args.candidates, args.out, args.feedback)
