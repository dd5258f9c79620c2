#!/usr/bin/env bash
# results/transplant.md, after training: each saved transplant start (`results/transplant_eval.py
# --save-dir SAVE_DIR`) distilled from SmolLM2 itself with ALM + SFT at one equal budget
# (configs/experiments/smollm2_gemma3_transplant_fit.yaml), scored on the zero-shot part's bytes
# (results/transplant_after_fit.py), and every model's downstream accuracy before and after
# (`ctd evaluate`, first LIMIT questions of TASKS).
#   OMP_NUM_THREADS=1 results/run_transplant_fit.sh && results/summarize_transplant.py write
set -euo pipefail
cd "$(dirname "$0")/.."
export CTD_TEACHER=${CTD_TEACHER:-$HOME/.cache/ctd/smollm2-135m-instruct-float32}
SAVE_DIR=${SAVE_DIR:-/tmp/ctd-transplant}
OUT=${OUT:-runs/transplant_fit}
STEPS=${STEPS:-40}
INITS=${INITS:-omp_k64 fvt mean}
TASKS=${TASKS:-piqa,arc_easy}
LIMIT=${LIMIT:-200}
DOWNSTREAM=results/transplant/downstream
for init in $INITS; do
  run="$OUT/$init"
  [ -f "$run/wall_seconds" ] && continue
  mkdir -p "$run"
  start=$SECONDS
  CTD_STUDENT="$SAVE_DIR/$init" .venv/bin/ctd fit \
    --config configs/experiments/smollm2_gemma3_transplant_fit.yaml \
    "trainer.default_root_dir=$run" "export_dir=$run/export" "trainer.max_steps=$STEPS" \
    "trainer.val_check_interval=$STEPS" > "$run.log" 2>&1
  echo $((SECONDS - start)) > "$run/wall_seconds"
  rm -rf "$run/checkpoints"   # 3 GB of optimizer state per run; the export is what is scored
done
mkdir -p "$DOWNSTREAM"
evaluate() {  # NAME MODEL_DIR
  [ -s "$DOWNSTREAM/$1.json" ] && return
  .venv/bin/ctd evaluate --model "$2" --tasks "$TASKS" --limit "$LIMIT" --json \
    2> "$DOWNSTREAM/$1.log" | tail -n 1 > "$DOWNSTREAM/$1.json"
  rm -f "$DOWNSTREAM/$1.log"
}
evaluate base "$CTD_TEACHER"
for init in $INITS; do
  evaluate "zero_shot_$init" "$SAVE_DIR/$init"
  evaluate "after_fit_$init" "$OUT/$init/export"
done
# shellcheck disable=SC2086
.venv/bin/python results/transplant_after_fit.py --runs "$OUT" --inits $INITS \
  --out results/transplant/after_fit.json
