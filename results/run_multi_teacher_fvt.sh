#!/usr/bin/env bash
# results/multi_teacher.md, pretrained start: the FVT student of results/transfer.md (SmolLM2-135M-
# Instruct on the Qwen2 tokenizer) distilled by SFT + ALM (GradMag) from SmolLM2-135M-Instruct,
# from Gemma-3-270m, or from both (chunk-level ensemble teacher, or the sum of per-teacher ALM),
# at one equal budget (configs/multi_distill/smollm2_gemma3_to_qwen2_fvt.yaml), then scored by
# `ctd evaluate` on the texts (and tasks) of results/run_transfer_equal.sh.
# JOBS (SETTING:SEED, or zero_shot:gemma3 for the second teacher's own scores) run in order and
# resume (a job with its outputs is skipped):
#   taskset -c 1 env OMP_NUM_THREADS=1 results/run_multi_teacher_fvt.sh
#   results/summarize_multi_teacher.py write
set -euo pipefail
cd "$(dirname "$0")/.."
export CTD_TEACHER=${CTD_TEACHER:-$HOME/.cache/ctd/smollm2-135m-instruct-float32}
export CTD_GEMMA3=${CTD_GEMMA3:-$HOME/.cache/ctd/gemma-3-270m-float32}
RUNS=${RUNS:-runs/multi_teacher_fvt}
DEST=${DEST:-results/multi_teacher/fvt_qwen2}
STEPS=${STEPS:-100}
TASKS=${TASKS:-piqa,arc_easy}
LIMIT=${LIMIT:-500}
JOBS=${JOBS:-both_ensemble:0 smollm2:0 gemma3:0 zero_shot:gemma3 both_sum:0}
export CTD_FVT_STUDENT=${CTD_FVT_STUDENT:-runs/transfer_equal/fvt_students/fvt_qwen2}
[ -d "$CTD_FVT_STUDENT" ] || .venv/bin/python results/make_fvt_students.py "$(dirname "$CTD_FVT_STUDENT")"
declare -A TEACHERS_OF=(  # the teachers of each setting
  [both_ensemble]="$CTD_TEACHER $CTD_GEMMA3" [both_sum]="$CTD_TEACHER $CTD_GEMMA3"
  [smollm2]="$CTD_TEACHER" [gemma3]="$CTD_GEMMA3"
)
declare -A COMBINE_OF=([both_ensemble]=ensemble [both_sum]=sum [smollm2]=ensemble [gemma3]=ensemble)
source results/transfer_scoring.sh   # TEXTS, score, evaluate

train() {  # SETTING SEED -> the run folder
  local run="$RUNS/$1/seed$2" teachers="" folder
  [ -f "$run/wall_seconds" ] && return
  mkdir -p "$run"
  for folder in ${TEACHERS_OF[$1]}; do teachers+="${teachers:+, }{name_or_path: $folder}"; done
  local start=$SECONDS
  .venv/bin/ctd fit --config configs/multi_distill/smollm2_gemma3_to_qwen2_fvt.yaml \
    "teachers=[$teachers]" "multi_teacher=${COMBINE_OF[$1]}" "seed=$2" "trainer.max_steps=$STEPS" \
    "trainer.val_check_interval=$STEPS" "optim.warmup_steps=$((STEPS / 10))" \
    "trainer.default_root_dir=$run" "export_dir=$run/export" > "$run.log" 2>&1
  echo $((SECONDS - start)) > "$run/wall_seconds"
  rm -rf "$run/checkpoints"
  local dest="$DEST/$1/seed$2"
  mkdir -p "$dest"
  cp "$run/metrics.json" "$run/config.yaml" "$run/wall_seconds" "$dest/"
  cp "$run.log" "$dest/run.log"
}

for job in $JOBS; do
  IFS=: read -r setting seed <<< "$job"
  if [ "$setting" = zero_shot ]; then
    evaluate "$CTD_GEMMA3" "$DEST/zero_shot" gemma3 --add-special-tokens  # Gemma needs its BOS
    continue
  fi
  train "$setting" "$seed"
  evaluate "$RUNS/$setting/seed$seed/export" "$DEST/$setting/seed$seed" downstream
done
