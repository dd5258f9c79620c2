#!/usr/bin/env bash
# results/drafter.md, larger equal budget: the TVD++ and forward-KL drafters of results/run_drafter.sh
# (same data, trimmed start, batch, lr) trained for STEPS steps instead of 12, then speculative
# decoding at gamma 3 (T = 0 and 1). Needs results/run_drafter.sh's runs/drafter/ (data, trimmed4).
#   results/run_drafter_budget.sh [LOSS ...]   # one loss per call runs them in parallel
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=""
PY=.venv/bin/python
STEPS=${STEPS:-48}
RUNS=runs/drafter
OUT=results/drafter/budget$STEPS
TARGET=$($PY -c "from pathlib import Path; from ctd.models import smollm2_checkpoint; print(smollm2_checkpoint(Path.home() / '.cache' / 'ctd'))")
for loss in "${@:-tvdpp kl}"; do
  if [ ! -f "$OUT/fit/$loss/metrics.json" ]; then
    start=$(date +%s)
    CTD_TARGET="$TARGET" CTD_DRAFTER="$RUNS/trimmed4" $PY -m ctd.cli fit \
      --config configs/drafter/smollm2_trimmed_tvdpp.yaml loss.name=$loss \
      "data.train_files=[$RUNS/train_generated.jsonl]" "data.val_files=[$RUNS/eval_generated.jsonl]" \
      data.max_teacher_length=128 data.max_student_length=128 trainer.max_steps=$STEPS \
      optim.lr=5e-4 optim.warmup_steps=3 trainer.val_check_interval=$STEPS \
      trainer.limit_val_batches=2 trainer.validate_before_fit=true \
      trainer.enable_progress_bar=false trainer.checkpoint_every_n_steps=100000 \
      trainer.default_root_dir=$RUNS/budget$STEPS/fit/$loss export_dir=$RUNS/budget$STEPS/$loss
    mkdir -p "$OUT/fit/$loss"
    cp "$RUNS/budget$STEPS/fit/$loss/metrics.json" "$OUT/fit/$loss/metrics.json"
    echo $(( $(date +%s) - start )) > "$OUT/fit/$loss/wall_seconds"
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
