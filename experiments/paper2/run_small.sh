#!/usr/bin/env bash
# Paper 2 in miniature on the embedded SmolLM2-135M-Instruct, CPU only.
# 1. A format warm-up (sft-init on make_sft_data.py: arith reference solutions, verifications in the STV format
#    whose verdicts are chosen at random, so judging starts at chance, and the model organism of STV's premise:
#    informed-prompt verifications whose verdict is the one the prompt states). FEEDBACK (recompute) is the
#    verifications' feedback: the reference's arithmetic redone beside the attempt's answer; generic is the fixed
#    sentence of the runs before 2026-12-07.
# 2. The generator's own attempts as candidates (§2.8): `eval` samples 4 per problem on TRAIN_PROBLEMS (32) training
#    problems and 16 held-out problems of arith at LEVELS ([1]: one-step), graded strictly.
# 3. Premises, in this order; the script stops (exit 3) at the first that fails, FORCE=1 goes on past them:
#    - informed (experiments/premises.py informed): the informed teacher's balanced accuracy on the held-out
#      candidates must reach 0.75 (the student's is reported beside it). PREMISE_ONLY=1 stops after it;
#    - the learnability ceiling (make_oracle_data.py: the student prompt fine-tuned for ORACLE_EPOCHS (3) epochs on
#      the grader's true verdicts of the training candidates, then judged on the held-out candidates): its balanced
#      accuracy must reach CEILING_MIN (0.7), or no verifier training can find a judgement to learn. CEILING=1 stops
#      after it. WARMUP=checkpoint reuses another run's warm-up (its data depends only on FEEDBACK).
# 4. One verifier per method (verdict_rl, opd, stv, sft) trained from the warm-up checkpoint for STEPS steps on the
#    training candidates at learning rate LR (5e-5), each step half correct and half incorrect
#    (candidates.balance=$BALANCE); held-out verification metrics at steps 0, 5, 10, ... on the fixed held-out
#    candidates.
# 5. V-R loops on the held-out problems with the warm-up model as generator and each verifier (the untrained one too).
# 6. plot_small.py: one figure and a table (summary.md).
# 7. ViL (papers.md §2.4) against its same-budget baseline, continued RLVR (rl-gen), both from the warm-up generator
#    for VIL_STEPS (10) steps of 4 problems x 2 samples, only where ViL's premise holds (premises.py verifier: the stv
#    verifier's balanced accuracy on the held-out candidates >= VIL_MIN (0.6), its 95% interval above 0.5; FORCE=1
#    goes past); then V-R loops on the held-out problems with each trained generator and the stv verifier.
# Usage: bash experiments/paper2/run_small.sh [STEPS]   (BALANCE=alternate: the suite's default candidate mix)
set -euo pipefail
STEPS=${1:-20}
BALANCE=${BALANCE:-labels}
OUT=${OUT:-results/paper2-small}
VR=${VERIREASON:-verireason}
PY=${PYTHON:-python}
LEVELS=${LEVELS:-[1]}
TRAIN_PROBLEMS=${TRAIN_PROBLEMS:-32}
FEEDBACK=${FEEDBACK:-recompute}
LR=${LR:-5e-5}  # the verifiers' learning rate: the ceiling's; stv_cpu's 1e-5 moved no verdict in 20 steps (README)
premise() { "$@" || { rc=$?; [ "${FORCE:-0}" = 1 ] || exit $rc; }; }
latest() { ls -d "$1"/checkpoints/step_* | sort | tail -1; }  # a run's last checkpoint

WARMUP=${WARMUP:-}  # another run's warm-up checkpoint (its data does not depend on LEVELS or TRAIN_PROBLEMS)
if [ -z "$WARMUP" ]; then
  $PY experiments/paper2/make_sft_data.py "$OUT/sft.jsonl" 96 --feedback "$FEEDBACK"
  $VR sft-init --data "$OUT/sft.jsonl" --out "$OUT/sft" --resume epochs=2 batch_size=16 optim.lr=5e-5 \
    optim.micro_batch_size=8 save_every=1000
  WARMUP=$(latest "$OUT/sft")
fi
INIT="$OUT/init"
mkdir -p "$OUT"
ln -sfn "$(cd "$WARMUP" && pwd)" "$INIT"

SAMPLE=(--model "$INIT" prompt=stv grader=dapo_strict sampling.n=4 sampling.temperature=1.0 sampling.max_tokens=128)
$VR eval "${SAMPLE[@]}" --bench arith --limit "$TRAIN_PROBLEMS" "bench.arith.levels=$LEVELS" --out "$OUT/cand-train" \
  --resume
$VR eval "${SAMPLE[@]}" --bench arith_heldout --limit 16 "bench.arith_heldout.levels=$LEVELS" \
  --out "$OUT/cand-heldout" --resume
premise $PY experiments/premises.py informed "$INIT" --candidates "$OUT/cand-heldout" --record "$OUT/premise.json"
[ "${PREMISE_ONLY:-0}" = 1 ] && exit 0
# The learnability ceiling: the student prompt fine-tuned on the grader's truth, judged like the premise.
$PY experiments/paper2/make_oracle_data.py "$OUT/cand-train" "$OUT/oracle.jsonl" --feedback "$FEEDBACK"
$VR sft-init --model "$INIT" --data "$OUT/oracle.jsonl" --out "$OUT/oracle" --resume epochs="${ORACLE_EPOCHS:-3}" \
  batch_size=16 optim.lr=5e-5 optim.micro_batch_size=8 save_every=1000
premise $PY experiments/premises.py informed "$(latest "$OUT/oracle")" \
  --candidates "$OUT/cand-heldout" --teacher-min 0 --student-min "${CEILING_MIN:-0.7}" \
  --record "$OUT/oracle-ceiling.json"
[ "${CEILING:-0}" = 1 ] && exit 0

for method in verdict_rl opd stv sft; do
  $VR stv --model "$INIT" --method "$method" --bench arith --eval-bench arith_heldout --samples "$OUT/cand-train" \
    --limit "$TRAIN_PROBLEMS" --steps "$STEPS" preset=stv_cpu "bench.arith.levels=$LEVELS" \
    "eval_bench.arith_heldout.levels=$LEVELS" eval_limit=16 candidates.heldout_samples="$OUT/cand-heldout" \
    candidates.heldout_per_label=2 candidates.balance="$BALANCE" optim.lr="$LR" --out "$OUT/stv-$method" --resume
done

VRLOOP=(--protocol vr_loop --bench arith_heldout --limit 12 "bench.arith_heldout.levels=$LEVELS"
        prompt=stv grader=dapo_strict verify=demo verify.chains=2 verify.rounds=2 sampling.max_tokens=128)
$VR eval --model "$INIT" "${VRLOOP[@]}" --out "$OUT/vr-untrained" --resume
for method in verdict_rl opd stv sft; do
  ckpt=$(latest "$OUT/stv-$method")
  $VR eval --model "$INIT" "${VRLOOP[@]}" --verifier "$ckpt" --out "$OUT/vr-$method" --resume
done
$PY experiments/paper2/plot_small.py "$OUT"

STV_CKPT=$(latest "$OUT/stv-stv")
premise $PY experiments/premises.py verifier "$STV_CKPT" --candidates "$OUT/cand-heldout" \
  --min-balanced "${VIL_MIN:-0.6}" --record "$OUT/premise-vil.json"
BUDGET=(--model "$INIT" --bench arith "bench.arith.levels=$LEVELS" --steps "${VIL_STEPS:-10}" --eval-bench arith_heldout
        "eval_bench.arith_heldout.levels=$LEVELS" trainer.prompts_per_step=4 trainer.group_size=2 optim.lr=1e-5
        sampling.max_tokens=128 trainer.save_every=5 trainer.eval_every=5)
$VR vil "${BUDGET[@]}" --verifier "$STV_CKPT" preset=vil_cpu --out "$OUT/vil" --resume
$VR rl-gen "${BUDGET[@]}" preset=cpu_small sampling.temperature=1.0 --out "$OUT/rlvr" --resume
for run in vil rlvr; do
  $VR eval --model "$(latest "$OUT/$run")" "${VRLOOP[@]}" --verifier "$STV_CKPT" \
    --out "$OUT/vr-$run" --resume
done
