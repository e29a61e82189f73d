#!/usr/bin/env bash
# Paper 3 in miniature on the embedded SmolLM2-135M-Instruct, CPU only (experiments/paper3/README.md).
# 1. Format warm-up: sft-init on arith reference solutions under the S²R prompt (make_warmup_data.py).
# 2. --stage data from the warm-up model: 5 samples per problem on PROBLEMS one- and two-step arith problems; the
#    judge is reference_judge.py behind an OpenAI-compatible endpoint on the loopback address (a judge that knows the
#    reference solution, standing in for the paper's GPT-4); the verdict filter, buckets and keep draws as specified.
#    Premise (experiments/premises.py bi-data): at least MIN_TRAJ trajectories (150; the paper used 3.1k), MIN_FIX
#    (100) of them with a verified wrong attempt and its correction; else the script stops. PROBLEMS (512) measured
#    151 trajectories, 126 with a correction (2026-12-03).
# 3. --stage bi: behaviour-initialization SFT on the trajectories (BI_EPOCHS epochs, 1; lr 5e-5), KL 0.1 to the
#    warm-up model. Premise (premises.py recall): the BI model's error recall on its own wrong held-out attempts
#    >= MIN_RECALL (0.3) and the balanced accuracy of its verdicts >= MIN_BALANCED (0.55), so that a constant
#    "incorrect" does not pass. PREMISE_ONLY=1 stops after both premises; FORCE=1 runs the RL stages past a failed
#    recall premise (to measure what RL does from such a BI model).
# 4. --stage orl and --stage prl from the BI checkpoint, STEPS steps each on the same problems (RL="orl prl"; RL=prl
#    runs one level, 40 minutes less).
# 5. eval preset=s2r_eval (greedy, s2r_attempts) of warm-up, BI, ORL and PRL on EVAL held-out problems.
# 6. plot_small.py: figure and table (summary.md).
# Usage: bash experiments/paper3/run_small.sh [STEPS]
set -euo pipefail
STEPS=${1:-10}
OUT=${OUT:-results/paper3-small}
VR=${VERIREASON:-verireason}
PY=${PYTHON:-python}
PORT=${PORT:-18731}
PROBLEMS=${PROBLEMS:-512}
EVAL=${EVAL:-48}
LEVELS="[1,2]"
MIN_TRAJ=${MIN_TRAJ:-150}
MIN_FIX=${MIN_FIX:-100}
MIN_RECALL=${MIN_RECALL:-0.3}
MIN_BALANCED=${MIN_BALANCED:-0.55}
BI_EPOCHS=${BI_EPOCHS:-1}
RL=${RL:-orl prl}
for level in $RL; do
  case $level in orl|prl) ;; *) echo "run_small.sh: RL holds '$level'; valid: orl prl" >&2; exit 2 ;; esac
done
ARITH=(--bench arith "bench.arith.levels=$LEVELS" "bench.arith.size=$(( PROBLEMS > 200 ? PROBLEMS : 200 ))")

$PY experiments/paper3/make_warmup_data.py "$OUT/warmup.jsonl" 96
$VR sft-init --data "$OUT/warmup.jsonl" --out "$OUT/warmup" --resume epochs=2 batch_size=16 optim.lr=5e-5 \
  optim.micro_batch_size=8 save_every=1000
last() { cd "$(ls -d "$1"/checkpoints/step_* | sort | tail -1)" && pwd; }
INIT=$(last "$OUT/warmup")

$PY experiments/paper3/reference_judge.py "$PORT" 0 "$(( PROBLEMS > 200 ? PROBLEMS : 200 ))" 1,2 &
JUDGE=$!
trap 'kill $JUDGE 2>/dev/null || true' EXIT
sleep 2
$VR s2r --stage data --model "$INIT" "${ARITH[@]}" --limit "$PROBLEMS" preset=s2r_cpu construct.sampling.max_tokens=128 \
  construct.judge.url="http://127.0.0.1:$PORT/v1" --out "$OUT/data" --resume
kill $JUDGE 2>/dev/null || true
$PY experiments/premises.py bi-data "$OUT/data" --min-trajectories "$MIN_TRAJ" --min-corrections "$MIN_FIX" \
  --record "$OUT/premise-data.json"

$VR s2r --stage bi --model "$INIT" --data "$OUT/data" preset=s2r_cpu "bi.epochs=$BI_EPOCHS" optim.lr=5e-5 --out "$OUT/bi" --resume
BI=$(last "$OUT/bi")
EVALS=(--bench arith_heldout --limit "$EVAL" "bench.arith_heldout.levels=$LEVELS" preset=s2r_eval sampling.max_tokens=320)
$VR eval --model "$BI" "${EVALS[@]}" --out "$OUT/eval-bi" --resume
$PY experiments/premises.py recall "$OUT/eval-bi" --min-recall "$MIN_RECALL" --min-balanced "$MIN_BALANCED" \
  --record "$OUT/premise-recall.json" || { rc=$?; [ "${FORCE:-0}" = 1 ] || exit $rc; }
[ "${PREMISE_ONLY:-0}" = 1 ] && exit 0
for level in $RL; do
  $VR s2r --stage "$level" --model "$BI" --data "$OUT/data" --limit "$PROBLEMS" --eval-bench arith_heldout \
    "eval_bench.arith_heldout.levels=$LEVELS" preset=s2r_cpu --steps "$STEPS" trainer.eval_every=5 \
    --out "$OUT/$level" --resume
done

$VR eval --model "$INIT" "${EVALS[@]}" --out "$OUT/eval-warmup" --resume
for level in $RL; do
  $VR eval --model "$(last "$OUT/$level")" "${EVALS[@]}" --out "$OUT/eval-$level" --resume
done
$PY experiments/paper3/plot_small.py "$OUT"
