#!/usr/bin/env bash
# Paper 1 in miniature on the embedded SmolLM2-135M-Instruct, CPU only: rl-gen and rl-verify (verify_only) for the
# same number of steps on one-step arithmetic, then asymmetry-probe over each run's checkpoints (base model = step 0)
# and one figure of both runs. About an hour on 2 cores. Usage: bash experiments/paper1/run_small.sh [STEPS]
set -euo pipefail
STEPS=${1:-8}
OUT=${OUT:-results/paper1-small}
VR=${VERIREASON:-verireason}
COMMON=(--bench arith --steps "$STEPS" preset=cpu_small "bench.arith.levels=[1]" sampling.max_tokens=256
        trainer.save_every=4 trainer.eval_every=0 trainer.probe_every=4)
PROBE=(--bench arith_heldout --limit 16 "bench.arith_heldout.levels=[1]" sampling=demo verify.sampling.max_tokens=256)

$VR rl-gen "${COMMON[@]}" --out "$OUT/rl-gen" --resume
$VR rl-verify "${COMMON[@]}" --out "$OUT/rl-verify" --resume
for run in rl-gen rl-verify; do
  $VR asymmetry-probe --checkpoints "smollm2-135m,$OUT/$run" "${PROBE[@]}" --out "$OUT/probe-$run" --resume
done
python experiments/paper1/plot_small.py "$OUT"
