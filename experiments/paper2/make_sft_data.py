"""Format warm-up data for the small paper-2 run, on arith problems of seed 7 (neither the training seed 0 nor the
held-out seed 1), under the STV prompt family (conf/prompt/stv.yaml):

* N solutions: the step-by-step reference solution, ending in ``\\boxed{answer}``, under the generation prompt;
* N verifications under the *student* verifier prompt, of a full solution (the reference, or a wrong variant of it,
  half each): feedback, then "Verdict: \\boxed{Yes}" or "\\boxed{No}" chosen **at random**, independent of the
  solution. The model learns the verdict format, not how to judge, so its verification starts at chance and any
  gain comes from the verifier training that follows;
* N verifications under the *informed* (teacher) prompt, which states the true verdict ("it is correct" /
  "incorrect") and shows the reference: the same kind of feedback and the verdict the prompt states. This is the
  model organism of STV's premise (papers.md §2.3): a 135M model cannot judge arithmetic, but after this warm-up
  its informed self can read the verdict it is told, while its uninformed self still answers at random, so the
  student can beat chance only by what STV trains: imitating its informed self. ``--no-informed`` leaves it out.

The feedback (``--feedback``):

* ``recompute`` (default since 2026-12-07): the verifier redoes the reference's arithmetic step by step ("Recomputing
  each step: 36 ÷ 4 = 9."). Under the informed prompt it then sets its result beside the solution's boxed answer ("My
  result is 9; the solution's answer is 7.") before the verdict the prompt states, so there the comparison and the
  verdict agree; under the student prompt it stops after the recomputation and the verdict is random. The wrong
  variant carries its error inside the work (the last step's result and the answer changed together, like a slip of
  the model's own), so copying the solution's lines does not give the recomputation. What the student can learn
  later, from its informed self, is to compare the two numbers and say Yes exactly when they agree: an ability the
  135M model can pick up (the learnability ceiling, ``make_oracle_data.py``), unlike judging a bare attempt
  (ceiling 0.52-0.63 with the generic sentence, experiments/paper2/README.md). (A first version that wrote the
  comparison under both prompts, with random student verdicts, taught the informed prompt to ignore it too: teacher
  balanced accuracy 0.60, TNR 0.20, 2026-12-07.)
* ``generic``: one of two fixed sentences ("I followed each step ...") and a wrong variant with only its final
  number changed; the design of 2026-11-24 to 2026-12-03, kept so those runs can be reproduced.

Usage: python experiments/paper2/make_sft_data.py OUT.jsonl [N] [--no-informed] [--feedback recompute|generic]"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from verireason import arith
from verireason.config import compose, to_object
from verireason.grading import last_boxed

FEEDBACK = ("I followed each step of the solution and checked the arithmetic of every line against the problem.",
            "I recomputed the quantities in the order the story gives them and compared them with the solution.")


def wrong_ending(solution: str, answer: str, rng: random.Random) -> str:
    """The reference solution with the result of its last line replaced by a nearby wrong number."""
    wrong = str(int(answer) + rng.choice([-3, -2, -1, 1, 2, 3]))
    *steps, last = solution.splitlines()
    return "\n".join([*steps, last.replace(answer, wrong)])


EQUATION = re.compile(r"\d+ [-+×÷] \d+ = \d+")


def wrong_work(solution: str, answer: str, rng: random.Random) -> str:
    """The reference solution with a slip in its last step: that step's result and the final answer both changed to
    a nearby wrong number, so the work agrees with the wrong answer (as the model's own arithmetic slips do)."""
    wrong = str(int(answer) + rng.choice([d for d in (-3, -2, -1, 1, 2, 3) if int(answer) + d > 0]))
    *steps, last = solution.splitlines()
    head, _, tail = steps[-1].rpartition(f"= {answer}")
    return "\n".join([*steps[:-1], f"{head}= {wrong}{tail}", re.sub(rf"\b{answer}\b", wrong, last)])


def recompute(solution: str, answer: str, response: str, compare: bool = True) -> str:
    """Feedback that redoes the reference ``solution``'s arithmetic and, with ``compare``, sets its result beside the
    response's last boxed answer ("missing" when it has none)."""
    claimed = last_boxed(response)
    steps = f"Recomputing each step: {', '.join(EQUATION.findall(solution))}."
    return (f"{steps} My result is {answer}; the solution's answer is {claimed.strip() if claimed else 'missing'}."
            if compare else steps)


def verification(user: str, verdict: str, rng: random.Random, feedback: str | None = None) -> dict:
    """An SFT record: ``user`` answered with ``feedback`` (else one of the generic sentences) and
    ``Verdict: \\boxed{verdict}``."""
    return {"prompt": user, "completion": f"{feedback or rng.choice(FEEDBACK)}\nVerdict: \\boxed{{{verdict}}}"}


def verification_record(user: str, p: arith.Problem, candidate: str, verdict: str, rng: random.Random,
                        feedback: str, compare: bool = True) -> dict:
    """``verification`` with the ``feedback`` kind's text: the recomputation of ``p`` beside ``candidate``'s answer
    (``compare``), or a generic sentence."""
    said = recompute(p.solution, p.answer, candidate, compare) if feedback == "recompute" else None
    return verification(user, verdict, rng, said)


def main(out: Path, n: int = 96, informed: bool = True, feedback: str = "recompute") -> None:
    prompt, rng = to_object(compose("stv", [])).prompt, random.Random(7)
    problems = arith.generate(n, 7, [1, 2])
    wrong = wrong_work if feedback == "recompute" else wrong_ending

    rows = [{"prompt": prompt.user.replace("{problem}", p.problem), "completion": p.solution} for p in problems]
    for p in problems:
        candidate = p.solution if rng.random() < 0.5 else wrong(p.solution, p.answer, rng)
        verdict = rng.choice(["Yes", "No"])
        user = prompt.verify_user.replace("{problem}", p.problem).replace("{response}", candidate)
        rows.append(verification_record(user, p, candidate, verdict, rng, feedback, compare=False))
    for p in problems if informed else ():
        right = rng.random() < 0.5
        candidate = p.solution if right else wrong(p.solution, p.answer, rng)
        user = (prompt.informed_verify_user.replace("{problem}", p.problem).replace("{response}", candidate)
                .replace("{reference}", p.solution).replace("{verdict}", "correct" if right else "incorrect"))
        rows.append(verification_record(user, p, candidate, "Yes" if right else "No", rng, feedback))
    rng.shuffle(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} examples -> {out}")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("out", type=Path)
    cli.add_argument("n", type=int, nargs="?", default=96)
    cli.add_argument("--no-informed", action="store_true")
    cli.add_argument("--feedback", choices=("recompute", "generic"), default="recompute")
    args = cli.parse_args()
    main(args.out, args.n, not args.no_informed, args.feedback)
