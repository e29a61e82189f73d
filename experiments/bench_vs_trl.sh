#!/usr/bin/env bash
# One RL step, ours beside TRL's GRPOTrainer, run one after the other on this machine (docs/benchmarks.md).
# Needs TRL in its own environment (TRL_PY, default /tmp/trlvenv/bin/python; see bench_trl_grpo.py's docstring).
# Each run appends one JSON line to results/bench/rl_step.jsonl; STEPS (default 3) steps each, the first is warm-up.
set -euo pipefail
PY="${PY:-.venv/bin/python}"
TRL_PY="${TRL_PY:-/tmp/trlvenv/bin/python}"
STEPS="${STEPS:-3}"
cd experiments
"$TRL_PY" bench_trl_grpo.py --steps "$STEPS"
"$TRL_PY" bench_trl_grpo.py --steps "$STEPS" --bf16
"../$PY" bench_rl_step.py --steps "$STEPS" --no-skip
"../$PY" bench_rl_step.py --steps "$STEPS" --no-skip --mixed-precision auto --micro-batch-tokens 4096
"../$PY" bench_rl_step.py --steps "$STEPS" --mixed-precision auto --micro-batch-tokens 4096
