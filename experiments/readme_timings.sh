#!/usr/bin/env bash
# Times every README example that runs on the embedded model, one after the other, on this machine.
# Run from the repository root (with ../shared beside it): bash experiments/readme_timings.sh
# Writes results/readme/timings.md (one row per command: wall seconds, exit code) and each run under results/readme/.
# ONLY="stv vil" times just those labels (into results/readme-only/).
set -uo pipefail
VR="${VR:-.venv/bin/verireason}"
ONLY="${ONLY:-}"
OUT=results/readme${ONLY:+-only}
rm -rf "$OUT" && mkdir -p "$OUT"
LOG="$OUT/timings.md"
printf '| command | seconds | exit |\n|---|---|---|\n' > "$LOG"
run() {  # run LABEL CMD...: time one command, log its output
  local label="$1"; shift
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $label "* ]]; then return; fi
  local start=$(date +%s.%N)
  "$@" > "$OUT/$label.log" 2>&1
  local rc=$?
  local secs=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.0f}')" "$start" "$(date +%s.%N)")
  printf '| `%s` | %s | %s |\n' "${*/#$VR/verireason}" "$secs" "$rc" >> "$LOG"
  echo "$label: ${secs}s (exit $rc)"
}
run solve_arith $VR eval --model smollm2-135m --bench arith --limit 16 sampling=demo --out $OUT/solve_arith
run solve_math500 $VR eval --model smollm2-135m --bench math500 --data-dir ../shared/benchmarks --limit 20 \
    sampling.max_tokens=512 --out $OUT/solve_math500
run self_verify $VR eval --protocol self_verify --samples ../shared/benchmarks/qwen25math_math_cot_samples.jsonl \
    --limit 8 verify=demo --out $OUT/self_verify
run vr_loop $VR eval --protocol vr_loop --model smollm2-135m --bench arith --limit 4 sampling=demo verify=demo \
    --out $OUT/vr_loop
run rl_gen $VR rl-gen --bench arith preset=cpu_small --steps 3 --out $OUT/rl_gen
run rl_verify $VR rl-verify --bench arith preset=cpu_small --steps 3 --out $OUT/rl_verify
run rl_verify_alter $VR rl-verify --bench arith preset=cpu_small --steps 3 --schedule verify_alter \
    schedule.interval=2 --out $OUT/rl_verify_alter
run probe $VR asymmetry-probe --checkpoints $OUT/rl_gen --limit 16 verify=demo --out $OUT/probe
run sft_data .venv/bin/python experiments/paper1/make_sft_data.py $OUT/sft.jsonl 32
run sft_init $VR sft-init --data $OUT/sft.jsonl --steps 4 batch_size=16 kl_coef=0.1 --out $OUT/sft
run stv $VR stv --method stv --bench arith preset=stv_cpu --steps 2 --out $OUT/stv
run stv_sft $VR stv --method sft --bench arith preset=stv_cpu --steps 2 --out $OUT/stv_sft
run vil $VR vil --bench arith preset=vil_cpu --steps 2 --out $OUT/vil
run s2r_data $VR s2r --stage data preset=s2r_cpu --out $OUT/s2r_data
# The S²R training stages read the small paper-3 run's trajectories where it exists (bash experiments/paper3/run_small.sh,
# 82 min). Without it (the raw embedded model builds no verified trajectory of its own), BI trains on the paper-1
# SFT records above and ORL/PRL start from the embedded model on --bench arith: the same stages at the same sizes.
if [ -d results/paper3-small/data ]; then
  S2R_DATA=(--data results/paper3-small/data); S2R_BI=(--model "$(ls -d results/paper3-small/bi/checkpoints/step_* | sort | tail -1)")
  BI_DATA=(--data results/paper3-small/data)
else
  S2R_DATA=(--bench arith --limit 16); S2R_BI=(); BI_DATA=(--data $OUT/sft.jsonl)
fi
run s2r_bi $VR s2r --stage bi "${BI_DATA[@]}" preset=s2r_cpu --steps 2 --out $OUT/s2r_bi
run s2r_orl $VR s2r --stage orl "${S2R_BI[@]}" "${S2R_DATA[@]}" preset=s2r_cpu --steps 2 --out $OUT/s2r_orl
run s2r_prl $VR s2r --stage prl "${S2R_BI[@]}" "${S2R_DATA[@]}" preset=s2r_cpu --steps 2 --out $OUT/s2r_prl
cat "$LOG"
