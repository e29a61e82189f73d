"""Format warm-up data for the small paper-1 run, on arith problems of seed 7 (neither the training seed 0 nor the
held-out seed 1):

* N solutions: the step-by-step reference solution, ending in ``\\boxed{answer}``, under paper 1's generation prompt;
* N verifications: paper 1's answer-only teacher prompt on a candidate answer (the gold one or a wrong one, half
  each), answered "Answer: \\boxed{Yes}" or "\\boxed{No}" **at random**, independent of the candidate: the model
  learns the verdict format, not how to judge, so its self-verification starts at chance.

Usage: python experiments/paper1/make_sft_data.py OUT.jsonl [N]"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from verireason import arith
from verireason.config import PromptCfg


def main(out: Path, n: int = 128) -> None:
    prompt, rng = PromptCfg(), random.Random(7)
    problems = arith.generate(n, 7, [1, 2])
    rows = [{"prompt": prompt.user.replace("{problem}", p.problem), "completion": p.solution} for p in problems]
    for p in problems:
        candidate = p.answer if rng.random() < 0.5 else str(int(p.answer) + rng.choice([-3, -2, -1, 1, 2, 3]))
        verdict = rng.choice(["Yes", "No"])
        rows.append({"prompt": prompt.verify_user.replace("{problem}", p.problem).replace("{response}", candidate),
                     "completion": f"Let me check the student's answer {candidate}.\nAnswer: \\boxed{{{verdict}}}"})
    rng.shuffle(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} examples -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 128)
