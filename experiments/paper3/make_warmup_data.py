"""Format warm-up data for the small paper-3 run: arith reference solutions (seed 7: neither the training seed 0
nor the held-out seed 1) under S²R's prompt (system "Please reason step by step, …", the problem as the user turn),
so the 135M model answers in ``\\boxed{}`` before trajectories are built. It learns no verification or retry.

Usage: python experiments/paper3/make_warmup_data.py OUT.jsonl [N]"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from verireason import arith
from verireason.papers.s2r import SYSTEM


def main(out: Path, n: int = 96) -> None:
    rows = [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p.problem},
                          {"role": "assistant", "content": p.solution}]} for p in arith.generate(n, 7, [1, 2])]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} examples -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 96)
