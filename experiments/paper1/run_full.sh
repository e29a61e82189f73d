#!/usr/bin/env bash
# Paper 1 at full scale (papers.md §1.7-1.9): Qwen2.5-{1.5B,3B,7B}-Instruct × {generate, verify_only, verify_init,
# verify_alter, mixed}, 1000 steps of 128 prompts × 8 rollouts, then Acc@16 on the six benchmarks and the asymmetry
# probe. GPU nodes only. Stage data locally first (DATA=dir with dapo_math_17k.jsonl and the eval sets; see README).
# Usage: MODELS="qwen2.5-1.5b-instruct" SCHEDULES="generate verify_alter" bash experiments/paper1/run_full.sh
set -euo pipefail
DATA=${DATA:?set DATA to the directory of normalized JSONL files}
MODELS=${MODELS:-"qwen2.5-1.5b-instruct qwen2.5-3b-instruct qwen2.5-7b-instruct"}
SCHEDULES=${SCHEDULES:-"generate verify_only verify_init verify_alter mixed"}
LAUNCH=${LAUNCH:-"accelerate launch --config_file conf/accelerate/fsdp.yaml -m verireason"}
OUT=${OUT:-results/paper1}
EVAL=amc23,minerva_math,olympiadbench,math500,aime24,aime25
for model in $MODELS; do
  for schedule in $SCHEDULES; do
    run="$OUT/$model/$schedule"
    case $schedule in
      generate)    cmd=(rl-gen) ;;
      verify_only) cmd=(rl-verify --schedule verify_only reward.overlong_buffer=512) ;;  # as Learning_to_self_verify.sh
      verify_init) cmd=(rl-verify --schedule verify_init schedule.init_steps=${INIT_STEPS:-200}) ;;  # stage length: unknown
      *)           cmd=(rl-verify --schedule "$schedule") ;;
    esac
    $LAUNCH "${cmd[@]}" --model "$model" --bench dapo_math_17k --eval-bench "$EVAL" --data-dir "$DATA" \
      --out "$run" --resume preset=paper1 ${EXTRA:-}
    last=$(ls -d "$run"/checkpoints/step_* | sort | tail -1)
    verireason eval --model "$last" --bench "$EVAL" --data-dir "$DATA" sampling=acc16 grader=dapo_strict \
      --out "$run/final-eval" --resume
    verireason asymmetry-probe --checkpoints "$run" --bench math500 --data-dir "$DATA" --out "$run/probe" --resume
  done
done
