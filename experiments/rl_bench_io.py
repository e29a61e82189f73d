"""What the two RL-step benchmarks share: their command line and how a result is recorded
(``results/bench/rl_step.jsonl``, one JSON line per run). Imported by bench_rl_step.py and bench_trl_grpo.py, which
run in different environments, so this file imports nothing from either."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    return p


def record(engine: str, device: str, args: argparse.Namespace, rows: list[dict]) -> dict:
    """Print and (unless --no-write) append the run's record; the headline is the mean step after the first."""
    warm = rows[1:] or rows
    result = {"engine": engine, "device": device, "threads": torch.get_num_threads(), "prompts": args.prompts,
              "group": args.group, "max_tokens": args.max_tokens, "steps": rows,
              "mean_step_s_after_first": round(statistics.mean(r["total"] for r in warm), 2)}
    print(json.dumps(result))
    if not args.no_write:
        out = Path("results/bench")
        out.mkdir(parents=True, exist_ok=True)
        with (out / "rl_step.jsonl").open("a") as handle:
            handle.write(json.dumps(result) + "\n")
    return result
