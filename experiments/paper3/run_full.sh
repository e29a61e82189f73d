#!/usr/bin/env bash
# Paper 3 (S²R) at full scale (papers.md §3.3-3.6, §3.8), for each of the paper's three models: data → BI → ORL and
# PRL → Table 2's evaluation. GPU nodes only; stage MATH train, MATH500 and the evaluation sets locally first (DATA=dir
# of normalized JSONL files; README "Benchmarks"). The judge of the data stage: JUDGE_URL, an OpenAI-compatible base
# URL (the paper likely used GPT-4-Preview-1106, §3.3; model name in JUDGE_MODEL, key in $OPENAI_API_KEY), or
# JUDGE, any model the engines load (e.g. a local Qwen2.5-72B-Instruct directory). With IMPORT=dir holding the released
# S2R-data/S2R-dataset files, the data stage imports them instead (Qwen2.5-Math-7B's files).
# Numbers: BI lr 5e-6, batch 32, 3 epochs, KL 0.01 (Qwen2.5-Math) / 0.1 (others), max length 8000 (6000 for Qwen2);
# RL 64 prompts × 4, lr 5e-7, 500 steps, KL 0.01 (Qwen2.5-Math) / 0.05 (others, Table 8), PRL 0.05 (README).
# Usage: DATA=data JUDGE_URL=https://api.openai.com/v1 bash experiments/paper3/run_full.sh
set -euo pipefail
DATA=${DATA:?set DATA to the directory of normalized JSONL files}
MODELS=${MODELS:-"qwen2.5-math-7b qwen2-7b-instruct llama-3.1-8b-instruct"}
LAUNCH=${LAUNCH:-"accelerate launch --config_file conf/accelerate/zero3.yaml -m verireason"}
OUT=${OUT:-results/paper3}
BENCHES=${BENCHES:-math500,aime24,amc23,olympiadbench,gsm8k}  # Table 2 also has CollegeMath and GaokaoEn2023
if [[ -n "${JUDGE_URL:-}" ]]; then
  JUDGE=(construct.judge.url="$JUDGE_URL" construct.judge.api_model="${JUDGE_MODEL:-gpt-4-1106-preview}")
elif [[ -n "${JUDGE:-}" ]]; then
  JUDGE=(--judge "$JUDGE")
else
  echo "set JUDGE_URL (an OpenAI-compatible endpoint) or JUDGE (a model) for the data stage" >&2; exit 2
fi
last() { ls -d "$1"/checkpoints/step_* | sort | tail -1; }

for model in $MODELS; do
  case $model in
    qwen2.5-math-*) BI_KL=0.01; RL_KL=0.01; MAXLEN=8000 ;;
    qwen2-7b-instruct) BI_KL=0.1; RL_KL=0.05; MAXLEN=6000 ;;
    *) BI_KL=0.1; RL_KL=0.05; MAXLEN=8000 ;;
  esac
  run="$OUT/$model"
  if [[ -n "${IMPORT:-}" && $model == qwen2.5-math-7b ]]; then
    verireason s2r --stage data --model "$model" construct.import_dir="$IMPORT" --out "$run/data" --resume
  else  # K = 5 samples of MATH train (decontaminated against MATH500), the judge's confirmative verifications
    verireason s2r --stage data --model "$model" --bench math_train --eval-bench math500 --data-dir "$DATA" \
      "${JUDGE[@]}" engine=vllm --out "$run/data" --resume
  fi
  $LAUNCH s2r --stage bi --model "$model" --data "$run/data" preset=s2r_bi bi.kl_coef=$BI_KL bi.max_length=$MAXLEN \
    --out "$run/bi" --resume
  bi=$(last "$run/bi")
  $LAUNCH s2r --stage orl --model "$bi" --data "$run/data" --eval-bench math500 --data-dir "$DATA" preset=s2r_orl \
    rl.kl_coef=$RL_KL --out "$run/orl" --resume
  $LAUNCH s2r --stage prl --model "$bi" --data "$run/data" --eval-bench math500 --data-dir "$DATA" preset=s2r_prl \
    --out "$run/prl" --resume
  for stage in base bi orl prl; do
    target=$model; [[ $stage != base ]] && target=$(last "$run/$stage")
    verireason eval --model "$target" --bench "$BENCHES" --data-dir "$DATA" preset=s2r_eval --out "$run/eval-$stage" --resume
  done
done
