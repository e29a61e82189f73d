"""Peak memory and time of the generalized-JSD distillation term (forward + backward) on one long verification,
over the full vocabulary with and without chunking over positions, and with top-k (papers.md §2.9).

Workload: student and teacher logits [1, T, V] (fp32, CPU) for a T-token completion at the embedded model's
vocabulary (SmolLM2: V = 49,152), every token trained. Each variant runs in a fresh subprocess; its peak is the
process's maximum resident set size minus that after the logits were made (the logits themselves excluded).
Appends a section to ``docs/benchmarks.md`` unless ``--no-write``.

Run: ``python experiments/bench_distill_memory.py [--tokens 2048] [--vocab 49152]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
VARIANTS = {"full vocabulary, unchunked": {"chunk": None}, "full vocabulary, chunks of 256": {"chunk": 256},
            "top-100, chunks of 256": {"chunk": 256, "top_k": 100}}


def child(tokens: int, vocab: int, options: dict) -> dict:
    import torch

    from verireason.losses import generalized_jsd

    torch.manual_seed(0)
    student = torch.randn(1, tokens, vocab, requires_grad=True)
    teacher = torch.randn(1, tokens, vocab)
    mask = torch.ones(1, tokens)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    loss = generalized_jsd(student, teacher, mask, beta=0.5, **options).sum() / tokens
    loss.backward()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base  # kB on Linux
    return {"seconds": seconds, "peak_mb": peak / 1024, "loss": loss.item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.tokens, args.vocab, json.loads(args.child))))
        return
    rows = {}
    for name, options in VARIANTS.items():
        out = subprocess.run([sys.executable, __file__, "--tokens", str(args.tokens), "--vocab", str(args.vocab),
                              "--child", json.dumps(options)], capture_output=True, text=True, check=True)
        rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name}: {rows[name]['peak_mb']:.0f} MB above the logits, {rows[name]['seconds']:.2f} s, "
              f"loss {rows[name]['loss']:.5f}")
    if not args.no_write:
        report(rows, args)


def report(rows: dict, args) -> None:
    logits_mb = args.tokens * args.vocab * 4 / 2**20
    lines = [f"\n## Distillation divergence memory, {datetime.now():%Y-%m-%d %H:%M}\n",
             f"Machine: {platform.machine()} {platform.system()}, CPU, {os.cpu_count()} cores. Workload: generalized "
             f"JSD (β = 0.5) forward + backward on student and teacher logits of one {args.tokens}-token completion, "
             f"V = {args.vocab} (each logits tensor {logits_mb:.0f} MB, fp32), every token trained; peak resident "
             "memory above the logits, each variant in its own process.",
             f"Command: `python experiments/bench_distill_memory.py --tokens {args.tokens} --vocab {args.vocab}`\n",
             "| variant | peak MB above the logits | seconds | loss |", "|---|---|---|---|"]
    lines += [f"| {name} | {r['peak_mb']:.0f} | {r['seconds']:.2f} | {r['loss']:.5f} |" for name, r in rows.items()]
    with DOC.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
