"""Format warm-up data for the small paper-2 run, on arith problems of seed 7 (neither the training seed 0 nor the
held-out seed 1), under the STV prompt family (conf/prompt/stv.yaml):

* N solutions: the step-by-step reference solution, ending in ``\\boxed{answer}``, under the generation prompt;
* N verifications under the *student* verifier prompt, of a full solution (the reference, or the reference with its
  final number changed, half each): one generic sentence of feedback and "Verdict: \\boxed{Yes}" or "\\boxed{No}"
  chosen **at random**, independent of the solution. The model learns the verdict format, not how to judge, so its
  verification starts at chance and any gain comes from the verifier training that follows;
* N verifications under the *informed* (teacher) prompt, which states the true verdict ("it is correct" /
  "incorrect") and shows the reference: the same feedback sentences and the verdict the prompt states. This is the
  model organism of STV's premise (papers.md §2.3): a 135M model cannot judge arithmetic, but after this warm-up
  its informed self can read the verdict it is told, while its uninformed self still answers at random, so the
  student can beat chance only by what STV trains: imitating its informed self. ``--no-informed`` leaves it out.

Usage: python experiments/paper2/make_sft_data.py OUT.jsonl [N] [--no-informed]"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from verireason import arith
from verireason.config import compose, to_object

FEEDBACK = ("I followed each step of the solution and checked the arithmetic of every line against the problem.",
            "I recomputed the quantities in the order the story gives them and compared them with the solution.")


def wrong_ending(solution: str, answer: str, rng: random.Random) -> str:
    """The reference solution with the result of its last line replaced by a nearby wrong number."""
    wrong = str(int(answer) + rng.choice([-3, -2, -1, 1, 2, 3]))
    *steps, last = solution.splitlines()
    return "\n".join([*steps, last.replace(answer, wrong)])


def verification(user: str, verdict: str, rng: random.Random) -> dict:
    """An SFT record: ``user`` answered with one of the feedback sentences and ``Verdict: \\boxed{verdict}``."""
    return {"prompt": user, "completion": f"{rng.choice(FEEDBACK)}\nVerdict: \\boxed{{{verdict}}}"}


def main(out: Path, n: int = 96, informed: bool = True) -> None:
    prompt, rng = to_object(compose("stv", [])).prompt, random.Random(7)
    problems = arith.generate(n, 7, [1, 2])
    rows = [{"prompt": prompt.user.replace("{problem}", p.problem), "completion": p.solution} for p in problems]
    for p in problems:
        candidate = p.solution if rng.random() < 0.5 else wrong_ending(p.solution, p.answer, rng)
        verdict = rng.choice(["Yes", "No"])
        user = prompt.verify_user.replace("{problem}", p.problem).replace("{response}", candidate)
        rows.append(verification(user, verdict, rng))
    for p in problems if informed else ():
        right = rng.random() < 0.5
        candidate = p.solution if right else wrong_ending(p.solution, p.answer, rng)
        user = (prompt.informed_verify_user.replace("{problem}", p.problem).replace("{response}", candidate)
                .replace("{reference}", p.solution).replace("{verdict}", "correct" if right else "incorrect"))
        rows.append(verification(user, "Yes" if right else "No", rng))
    rng.shuffle(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} examples -> {out}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-informed"]
    main(Path(args[0]), int(args[1]) if len(args) > 1 else 96, "--no-informed" not in sys.argv)
