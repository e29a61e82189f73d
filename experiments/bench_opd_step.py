"""One OPD step of ``verireason stv`` on the embedded model, split into its phases, with and without chunking.

Workload: SmolLM2-135M-Instruct (fp32, CPU, V = 49,152) as student verifier and a frozen copy as teacher; one
verification of exactly ``--tokens`` new tokens of an arith candidate under the student prompt (generation forced to
that length), then ``Learner.update`` with the OPD term alone (``pg_coef = 0``, β = 0.5), the teacher reading the
privileged prompt (verdict and reference). Phases: generation; teacher forward (``Learner.teacher_logits``, timed
alone); update (student forward + teacher forward + divergence + backward + AdamW), from which "update without the
teacher forward" is derived. Each divergence variant runs in a fresh process on the same sampled tokens; its peak is
the process's maximum resident set size minus that after both models were loaded.
Appends a section to ``docs/benchmarks.md`` unless ``--no-write``.

Run: ``python experiments/bench_opd_step.py [--tokens 2048]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
VARIANTS = {"full vocabulary, unchunked": {"chunk": None}, "full vocabulary, chunks of 256": {"chunk": 256},
            "top-100, chunks of 256": {"chunk": 256, "top_k": 100}}


def _setup(options: dict):
    import copy

    import torch

    from verireason.config import compose, to_object
    from verireason.models import load_causal_lm, load_tokenizer, resolve_model_path
    from verireason.trainer import Distill, Learner, build_accelerator

    torch.manual_seed(0)
    cfg = to_object(compose("stv", []))
    path = resolve_model_path(cfg.model)
    policy = load_causal_lm(path, "float32", "cpu").train()
    teacher = copy.deepcopy(policy)
    learner = Learner(build_accelerator("cpu"), policy, load_tokenizer(path), lr=1e-6, weight_decay=0.0,
                      warmup_steps=0, grad_clip=1.0, micro_batch_size=1,
                      distill=Distill(teacher, coef=1.0, pg_coef=0.0, beta=0.5, **options))
    return cfg, learner


def _prompts(cfg, learner):
    from verireason import arith
    from verireason.prompts import chat_text, informed_verify_messages, verify_messages

    problem = arith.generate(1, 3, [2])[0]
    candidate = problem.solution.replace(problem.answer, str(int(problem.answer) + 1))  # a wrong candidate
    tok = learner.tokenizer
    student = chat_text(tok, verify_messages(problem, candidate, cfg.prompt, cfg.model.system_prompt))
    teacher = chat_text(tok, informed_verify_messages(problem, candidate, False, cfg.prompt, cfg.model.system_prompt))
    return student, teacher


def generate(tokens: int, out: Path) -> dict:
    """Sample one verification of exactly ``tokens`` tokens; write the ids for the update children."""
    import torch

    cfg, learner = _setup({"chunk": 256})
    student, teacher = _prompts(cfg, learner)
    ids = learner.tokenizer(student, return_tensors="pt", add_special_tokens=False)
    start = time.perf_counter()
    with torch.no_grad():
        out_ids = learner.model.generate(**ids, do_sample=True, temperature=1.0, max_new_tokens=tokens,
                                         min_new_tokens=tokens, pad_token_id=learner.pad_id)
    seconds = time.perf_counter() - start
    completion = out_ids[0, ids["input_ids"].shape[1]:].tolist()
    out.write_text(json.dumps({"completion": completion}))
    return {"seconds": seconds, "tokens": len(completion)}


def update(tokens_file: Path, options: dict) -> dict:
    from verireason.records import Rollout

    cfg, learner = _setup(options)
    student, teacher = _prompts(cfg, learner)
    tok = learner.tokenizer
    completion = tuple(json.loads(tokens_file.read_text())["completion"])
    rollout = Rollout("stv", "g", student, "", tuple(tok(student, add_special_tokens=False)["input_ids"]), completion,
                      0.0, "length", teacher_prompt_ids=tuple(tok(teacher, add_special_tokens=False)["input_ids"]))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    learner.teacher_logits([rollout])
    teacher_seconds = time.perf_counter() - start
    start = time.perf_counter()
    stats = learner.update([rollout])
    update_seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    return {"teacher_s": teacher_seconds, "update_s": update_seconds, "peak_mb": peak / 1024, "jsd": stats["jsd"],
            "prompt_tokens": len(rollout.prompt_ids), "teacher_prompt_tokens": len(rollout.teacher_prompt_ids)}


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--update", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        print(json.dumps(generate(args.tokens, Path(args.generate))))
        return
    if args.update:
        print(json.dumps(update(Path(args.update[0]), json.loads(args.update[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        ids = Path(tmp) / "ids.json"
        gen = _child("--tokens", str(args.tokens), "--generate", str(ids))
        print(f"generation: {gen['tokens']} tokens in {gen['seconds']:.1f} s")
        rows = {}
        for name, options in VARIANTS.items():
            rows[name] = _child("--update", str(ids), json.dumps(options))
            r = rows[name]
            print(f"{name}: teacher forward {r['teacher_s']:.1f} s, update {r['update_s']:.1f} s, "
                  f"peak {r['peak_mb']:.0f} MB, jsd {r['jsd']:.5f}")
    if not args.no_write:
        report(gen, rows, args)


def report(gen: dict, rows: dict, args) -> None:
    any_row = next(iter(rows.values()))
    lines = [f"\n## OPD step time split, {datetime.now():%Y-%m-%d %H:%M}\n",
             f"Machine: {platform.machine()} {platform.system()}, CPU, {os.cpu_count()} cores. Workload: one "
             f"`verireason stv --method opd` step on SmolLM2-135M-Instruct (fp32) with a frozen teacher copy: one "
             f"verification of {gen['tokens']} sampled tokens (student prompt {any_row['prompt_tokens']} tokens, "
             f"teacher prompt {any_row['teacher_prompt_tokens']}), V = 49,152, β = 0.5, micro-batch 1; each variant "
             "in its own process on the same tokens; peak = maximum resident memory above that with both models loaded.",
             f"Command: `python experiments/bench_opd_step.py --tokens {args.tokens}`\n",
             f"Generation (batch 1, forced to {gen['tokens']} tokens): {gen['seconds']:.1f} s.\n",
             "| variant | teacher forward s | update s (with teacher forward) | update s without it | peak MB | JSD/token |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {r['teacher_s']:.1f} | {r['update_s']:.1f} | {r['update_s'] - r['teacher_s']:.1f} | "
              f"{r['peak_mb']:.0f} | {r['jsd']:.5f} |" for name, r in rows.items()]
    with DOC.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
