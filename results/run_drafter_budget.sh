#!/usr/bin/env bash
# results/drafter.md, larger equal budget: the TVD++ and forward-KL drafters of results/run_drafter.sh
# (same data, trimmed start, batch, lr) trained for STEPS steps instead of 12, then speculative
# decoding at gamma 3 (T = 0 and 1). Needs results/run_drafter.sh's runs/drafter/ (data, trimmed4).
#   results/run_drafter_budget.sh [LOSS ...]   # one loss per call runs them in parallel
set -euo pipefail
cd "$(dirname "$0")/.."
source results/drafter_fit.sh
export OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=""
PY=.venv/bin/python
STEPS=${STEPS:-48}
RUNS=runs/drafter
OUT=results/drafter/budget$STEPS
TARGET=$($PY -c "from pathlib import Path; from ctd.models import smollm2_checkpoint; print(smollm2_checkpoint(Path.home() / '.cache' / 'ctd'))")
[ $# -gt 0 ] || set -- tvdpp kl
for loss in "$@"; do
  if [ ! -f "$OUT/fit/$loss/metrics.json" ]; then
    fit_drafter "$loss" $STEPS "$RUNS/budget$STEPS" "$OUT"
  fi
  mkdir -p "$OUT/specdec"
  for temperature in 0 1; do
    out="$OUT/specdec/${loss}_g3_t${temperature}.json"
    [ -s "$out" ] && continue
    $PY -m ctd.cli specdec --target "$TARGET" --drafter "$RUNS/budget$STEPS/$loss" \
      --prompts results/drafter/eval_prompts.jsonl --gamma 3 --temperature $temperature \
      --max-new-tokens 24 --limit 3 --device cpu --json | tail -n 1 > "$out.tmp"
    mv "$out.tmp" "$out"
  done
done
