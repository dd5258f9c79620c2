#!/usr/bin/env bash
# Zero-shot downstream rows of results/transfer.md: the teacher and its untrained FVT students.
#   OMP_NUM_THREADS=1 results/run_downstream.sh    # then results/summarize_transfer.py write
# MODELS_DIR holds fvt_bytes and fvt_qwen2 (results/make_fvt_students.py MODELS_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS_DIR=${MODELS_DIR:-runs/fvt_students}
TEACHER=${TEACHER:-$HOME/.cache/ctd/smollm2-135m-instruct-float32}
TASKS=${TASKS:-piqa,arc_easy,hellaswag,lambada}
LIMIT=${LIMIT:-200}
OUT=${OUT:-results/downstream/zero_shot}
mkdir -p "$OUT"
[ -d "$MODELS_DIR/fvt_bytes" ] || .venv/bin/python results/make_fvt_students.py "$MODELS_DIR"
for pair in "teacher:$TEACHER" "fvt_qwen2:$MODELS_DIR/fvt_qwen2" "fvt_bytes:$MODELS_DIR/fvt_bytes"; do
  name=${pair%%:*}
  start=$(date +%s)
  .venv/bin/ctd evaluate --model "${pair#*:}" --tasks "$TASKS" --limit "$LIMIT" --json \
    2> "$OUT/$name.log" | tail -n 1 > "$OUT/$name.json"
  echo $(( $(date +%s) - start )) > "$OUT/$name.wall_seconds"
done
