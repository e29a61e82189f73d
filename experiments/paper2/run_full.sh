#!/usr/bin/env bash
# Paper 2 at full scale (papers.md §2.2-2.6, §2.8). GPU nodes only; stage DAPO-Math-17k locally first
# (DATA=dir with dapo_math_17k.jsonl; see README "Benchmarks").
# 1. The generator's rollouts: 32 per DAPO problem (Qwen3-8B), then STV's bins (Hardest: 0/32; Hard: 0 < p < 0.2).
#    The paper de-duplicates ~150 test problems per bin by embedding similarity; we hold out the first EVAL_N.
# 2. Verifiers at 8B / 4B / 1.7B with each method (the paper's baselines: SFT, verdict-RL; STV; OPD alone as an
#    ablation), candidates = the generator's own rollouts.
# 3. V-R loops, 32 chains × 20 rounds, on the Hard and Hardest test problems: untrained self-verifier vs each verifier.
# 4. ViL from the generator with the 8B STV verifier, and the same-budget continued-RLVR baseline.
# Usage: DATA=data GENERATOR=qwen3-8b bash experiments/paper2/run_full.sh
set -euo pipefail
DATA=${DATA:?set DATA to the directory of normalized JSONL files}
GENERATOR=${GENERATOR:-qwen3-8b}
VERIFIERS=${VERIFIERS:-"qwen3-8b qwen3-4b qwen3-1.7b"}
METHODS=${METHODS:-"sft verdict_rl opd stv"}
LAUNCH=${LAUNCH:-"accelerate launch --config_file conf/accelerate/fsdp.yaml -m verireason"}
OUT=${OUT:-results/paper2}
EVAL_N=${EVAL_N:-150}
VR=(prompt=stv verify.chains=32 verify.rounds=20 verify.sampling.max_tokens=4096 sampling.max_tokens=10240
    grader=dapo_strict)  # options (--...) come before these key=value overrides

verireason eval --model "$GENERATOR" --bench dapo_math_17k --data-dir "$DATA" sampling.n=32 sampling.temperature=1.0 \
  sampling.max_tokens=10240 grader=dapo_strict --out "$OUT/rollouts" --resume
verireason bins "$OUT/rollouts" --out "$OUT/bins"
for bin in hard hardest; do  # test = the first EVAL_N problems of each bin, train = the rest
  head -n "$EVAL_N" "$OUT/bins/dapo_math_17k_$bin.jsonl" > "$OUT/bins/dapo_${bin}_test.jsonl"
  tail -n +"$((EVAL_N + 1))" "$OUT/bins/dapo_math_17k_$bin.jsonl" > "$OUT/bins/dapo_math_17k_${bin}_train.jsonl"
done
TRAIN=(--bench dapo_hard,dapo_hardest --data-dir "$OUT/bins")
TRAIN_FILES=(bench.dapo_hard.file=dapo_math_17k_hard_train.jsonl bench.dapo_hardest.file=dapo_math_17k_hardest_train.jsonl)
TEST=(--protocol vr_loop --bench custom --data-dir "$OUT/bins")

for bin in hard hardest; do
  verireason eval --model "$GENERATOR" "${TEST[@]}" --out "$OUT/vr/untrained/$bin" --resume \
    bench.custom.file="dapo_${bin}_test.jsonl" "${VR[@]}"
done
for verifier in $VERIFIERS; do
  for method in $METHODS; do
    run="$OUT/stv/$verifier/$method"
    $LAUNCH stv --model "$verifier" --method "$method" "${TRAIN[@]}" --samples "$OUT/rollouts" --out "$run" \
      --resume "${TRAIN_FILES[@]}" preset=stv ${EXTRA:-}
    last=$(ls -d "$run"/checkpoints/step_* | sort | tail -1)
    for bin in hard hardest; do
      verireason eval --model "$GENERATOR" --verifier "$last" "${TEST[@]}" --out "$OUT/vr/$verifier-$method/$bin" \
        --resume bench.custom.file="dapo_${bin}_test.jsonl" "${VR[@]}"
    done
  done
done

stv8=$(ls -d "$OUT/stv/qwen3-8b/stv"/checkpoints/step_* | sort | tail -1)
$LAUNCH vil --model "$GENERATOR" --verifier "$stv8" "${TRAIN[@]}" --out "$OUT/vil" --resume "${TRAIN_FILES[@]}" preset=vil
$LAUNCH rl-gen --model "$GENERATOR" "${TRAIN[@]}" --out "$OUT/rlvr-longer" --resume "${TRAIN_FILES[@]}" preset=paper1 \
  trainer.max_steps=200  # the same-budget baseline: continued RLVR
for run in vil rlvr-longer; do
  last=$(ls -d "$OUT/$run"/checkpoints/step_* | sort | tail -1)
  for bin in hard hardest; do
    verireason eval --model "$last" --verifier "$stv8" "${TEST[@]}" --out "$OUT/vr/$run/$bin" --resume \
      bench.custom.file="dapo_${bin}_test.jsonl" "${VR[@]}"
  done
done
