#!/usr/bin/env bash
# Paper 1 in miniature on the embedded SmolLM2-135M-Instruct, CPU only. The 135M model never writes \boxed{} on its
# own (0 of 64 rollouts), so a short sft-init teaches the formats first (arith reference solutions, and verdicts
# chosen at random so that judging starts at chance: make_sft_data.py); from that
# checkpoint, rl-gen and rl-verify (verify_only) train for the same number of steps on one-step arithmetic, then
# asymmetry-probe measures each run's checkpoints (the SFT checkpoint is step 0) and one figure shows both runs.
# About an hour on 2 cores. Usage: bash experiments/paper1/run_small.sh [STEPS]
set -euo pipefail
STEPS=${1:-20}
OUT=${OUT:-results/paper1-small}
VR=${VERIREASON:-verireason}
PY=${PYTHON:-python}

$PY experiments/paper1/make_sft_data.py "$OUT/sft.jsonl" 96
$VR sft-init --data "$OUT/sft.jsonl" --out "$OUT/sft" --resume epochs=2 batch_size=16 optim.lr=5e-5 \
  optim.micro_batch_size=8 save_every=1000
INIT="$OUT/init"  # the SFT checkpoint under a name without digits: asymmetry-probe reads steps from names
ln -sfn "$(cd "$(ls -d "$OUT"/sft/checkpoints/step_* | sort | tail -1)" && pwd)" "$INIT"

COMMON=(--model "$INIT" --bench arith --steps "$STEPS" preset=cpu_small "bench.arith.levels=[1]"
        sampling.max_tokens=256 trainer.save_every=5 trainer.eval_every=0 trainer.probe_every=5)
$VR rl-gen "${COMMON[@]}" --out "$OUT/rl-gen" --resume
$VR rl-verify "${COMMON[@]}" --out "$OUT/rl-verify" --resume

PROBE=(--bench arith_heldout --limit 16 "bench.arith_heldout.levels=[1]" sampling=demo verify.sampling.max_tokens=256
       grader=dapo_strict)
for run in rl-gen rl-verify; do
  $VR asymmetry-probe --checkpoints "$INIT,$OUT/$run" "${PROBE[@]}" --out "$OUT/probe-$run" --resume
done
$PY experiments/paper1/plot_small.py "$OUT"
