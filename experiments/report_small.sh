#!/usr/bin/env bash
# `verireason report` over the miniatures' finished runs (experiments/paper{1,2,3}/run_small.sh), whichever exist:
# paper 1's rl-gen, rl-verify (verify_only) and rl-verify-alter; paper 2's four verifiers (stv-*); paper 3's ORL and
# PRL. Every final checkpoint and its initial model on one protocol layer: the same LIMIT held-out one-step arith
# problems (LEVELS), one GRADER, conf/report.yaml's token budget, each model prompted as its run prompted it, V-R loops
# with one common verifier (the first run's initial model). Writes $OUT/report.md, report.json and report.png;
# evaluations are reused. Extra arguments are report overrides.
# GRADER is math_verify (the last box of the whole response). Paper 1's dapo_strict reads a box only near the end, so
# it scores every S²R response (a verification follows the answer) 0; on paper 1's own samples the two grade
# identically (experiments/regrade_report.py, 2026-12-03), so GRADER=dapo_strict is for paper-1-only reports.
# Usage: bash experiments/report_small.sh [OVERRIDES...]   (OUT=results/report-small LIMIT=32 LEVELS=[1] RUNS=all)
# One run per paper, its own method: RUNS="results/paper1-small/rl-gen results/paper2-small/stv-stv
# results/paper3-small/prl" (20 evaluations; the first run's initial model is the common verifier).
set -euo pipefail
OUT=${OUT:-results/report-small}
LIMIT=${LIMIT:-32}
LEVELS=${LEVELS:-[1]}
GRADER=${GRADER:-math_verify}
VR=${VERIREASON:-verireason}
ALL=(results/paper1-small/{rl-gen,rl-verify,rl-verify-alter} results/paper2-small/stv-{verdict_rl,opd,stv,sft}
     results/paper3-small/{orl,prl})
if [ -n "${RUNS:-}" ]; then
  read -r -a RUNS <<< "$RUNS"   # named runs: report refuses a missing or unfinished one with one line
else
  RUNS=()
  for run in "${ALL[@]}"; do
    if compgen -G "$run/checkpoints/step_*" >/dev/null; then RUNS+=("$run"); fi
  done
fi
if [ ${#RUNS[@]} = 0 ]; then
  echo "report_small.sh: no finished miniature run under results/paper{1,2,3}-small;" \
       "run experiments/paperN/run_small.sh first" >&2
  exit 2
fi
echo "runs: ${RUNS[*]}"
$VR report "${RUNS[@]}" --out "$OUT" --limit "$LIMIT" "bench.arith_heldout.levels=$LEVELS" "grader=$GRADER" "$@"
