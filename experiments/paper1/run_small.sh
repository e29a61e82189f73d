#!/usr/bin/env bash
# Paper 1 in miniature on the embedded SmolLM2-135M-Instruct, CPU only. The 135M model never writes \boxed{} on its
# own (0 of 64 rollouts), so a short sft-init teaches the formats first (arith reference solutions, and verdicts
# chosen at random so that judging starts at chance: make_sft_data.py); from that
# checkpoint, rl-gen, rl-verify (verify_only) and rl-verify (verify_alter) train for the same number of steps on
# one-step arithmetic, then asymmetry-probe measures each run's checkpoints (the SFT checkpoint is step 0, probed
# once) and one figure shows the three runs with 95% intervals (plot_small.py).
# Premise first (papers.md §1.5: RL on generation needs both rewards): the warm-up model's accuracy on the task,
# 4 samples on 32 problems, must lie in 30-70% (experiments/premises.py), else the script stops there. Then a pilot:
# the rl-gen run's first PILOT steps must move held-out accuracy (32 problems x 4, step 0 vs step PILOT) by more
# than its paired 95% interval (premises.py pilot), else the script stops; the rl-gen run then goes on to STEPS.
# A second task premise (premises.py mixed): at least MIXED_MIN (0.3) of those problems must be solved in some samples
# and failed in others, since GRPO learns only from groups whose samples disagree. SFT_EPOCHS / SFT_LR set the
# warm-up (1 / 5e-5; with 2 epochs the mixed share was 0.16 on 2026-12-03). PREMISE_ONLY=1 stops after the
# premises (15 minutes); RUNS=rl-gen trains and probes rl-gen alone. 75 minutes on 2 cores (2026-12-03).
# Usage: bash experiments/paper1/run_small.sh [STEPS]
set -euo pipefail
STEPS=${1:-20}
PILOT=${PILOT:-10}
LEVELS=${LEVELS:-[1]}   # arith levels of the task, the premise and the held-out problems
LR=${LR:-1e-5}
SFT_EPOCHS=${SFT_EPOCHS:-1}
SFT_LR=${SFT_LR:-5e-5}
MIXED_MIN=${MIXED_MIN:-0.3}
OUT=${OUT:-results/paper1-small}
VR=${VERIREASON:-verireason}
PY=${PYTHON:-python}
RUNS=${RUNS:-rl-gen rl-verify rl-verify-alter}   # the compared runs that go on to STEPS and are probed
for run in $RUNS; do
  case $run in
    rl-gen|rl-verify|rl-verify-alter) ;;
    *) echo "run_small.sh: RUNS holds '$run'; valid: rl-gen rl-verify rl-verify-alter" >&2; exit 2 ;;
  esac
done

$PY experiments/paper1/make_sft_data.py "$OUT/sft.jsonl" 96
$VR sft-init --data "$OUT/sft.jsonl" --out "$OUT/sft" --resume epochs="$SFT_EPOCHS" batch_size=16 optim.lr="$SFT_LR" \
  optim.micro_batch_size=8 save_every=1000
INIT="$OUT/init"  # the SFT checkpoint under a name without digits: asymmetry-probe reads steps from names
ln -sfn "$(cd "$(ls -d "$OUT"/sft/checkpoints/step_* | sort | tail -1)" && pwd)" "$INIT"

$VR eval --model "$INIT" --bench arith --limit 32 "bench.arith.levels=$LEVELS" sampling=demo grader=dapo_strict \
  --out "$OUT/premise-eval" --resume
$PY experiments/premises.py accuracy "$OUT/premise-eval" --between 0.3 0.7 --record "$OUT/premise.json"
$PY experiments/premises.py mixed "$OUT/premise-eval" --min-share "$MIXED_MIN" --record "$OUT/premise-mixed.json"

COMMON=(--model "$INIT" --bench arith preset=cpu_small "bench.arith.levels=$LEVELS" sampling.max_tokens=256
        optim.lr="$LR" trainer.save_every=5 --eval-bench arith_heldout "eval_bench.arith_heldout.levels=$LEVELS" eval_limit=32
        trainer.eval_every="$PILOT" trainer.probe_every=5)
$VR rl-gen "${COMMON[@]}" --steps "$PILOT" --out "$OUT/rl-gen" --resume
$PY experiments/premises.py pilot "$OUT/rl-gen" --record "$OUT/premise-pilot.json"
[ "${PREMISE_ONLY:-0}" = 1 ] && exit 0

COMMON+=(--steps "$STEPS")
for run in $RUNS; do
  case $run in
    rl-gen) $VR rl-gen "${COMMON[@]}" --out "$OUT/rl-gen" --resume ;;
    rl-verify) $VR rl-verify "${COMMON[@]}" --out "$OUT/rl-verify" --resume ;;
    rl-verify-alter) $VR rl-verify "${COMMON[@]}" --schedule verify_alter --out "$OUT/rl-verify-alter" --resume ;;
  esac
done

PROBE=(--bench arith_heldout --limit "${PROBE_LIMIT:-32}" "bench.arith_heldout.levels=$LEVELS" sampling=demo
       verify.sampling.max_tokens=256 grader=dapo_strict)
# the SFT checkpoint once; each run's probe starts from a copy of it (the probe skips checkpoints in its CSV)
$VR asymmetry-probe --checkpoints "$INIT" "${PROBE[@]}" --out "$OUT/probe-init" --resume
for run in $RUNS; do
  if [ ! -f "$OUT/probe-$run/asymmetry.csv" ]; then
    mkdir -p "$OUT/probe-$run" && cp -r "$OUT/probe-init/." "$OUT/probe-$run/"
  fi
  $VR asymmetry-probe --checkpoints "$INIT,$OUT/$run" "${PROBE[@]}" --out "$OUT/probe-$run" --resume
done
$PY experiments/paper1/plot_small.py "$OUT"
