#!/usr/bin/env bash
# results/transfer.md, equal budget: SmolLM2-135M-Instruct moved to a new tokenizer from the same
# FVT start by each method (configs/transfer/paper/smollm2_to_<target>.yaml, the paper's recipe,
# with the method's losses), then scored by `ctd evaluate`: downstream accuracy (first LIMIT
# questions of TASKS), bits per byte on out-of-domain prose and, separately, on the start of the
# held-out split (in-domain; both texts from results/transfer_ood_texts.py).
# JOBS run in order and resume (a job with its outputs is skipped):
#   zero_shot:MODEL        MODEL = teacher | fvt_<target> (the untrained FVT student)
#   TARGET:METHOD:SEED     train at STEPS steps, export, then score the export
#   OMP_NUM_THREADS=2 results/run_transfer_equal.sh   # then results/summarize_transfer.py write
# Another budget (table `budget` of results/transfer.md), e.g. 50 steps:
#   RUNS=runs/transfer_equal/steps50 DEST=results/transfer_equal/steps50 STEPS=50 JOBS=qwen2:sft:0 \
#     results/run_transfer_equal.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CTD_TEACHER=${CTD_TEACHER:-$HOME/.cache/ctd/smollm2-135m-instruct-float32}
export CTD_STUDENT_TOKENIZER=${CTD_STUDENT_TOKENIZER:-../shared/assets/tokenizers/qwen2}
RUNS=${RUNS:-runs/transfer_equal}
DEST=${DEST:-results/transfer_equal}
STEPS=${STEPS:-100}
TASKS=${TASKS:-piqa,arc_easy,hellaswag,lambada}
LIMIT=${LIMIT:-500}
JOBS=${JOBS:-zero_shot:teacher zero_shot:fvt_qwen2 qwen2:sft:0 qwen2:alm_sft:0}
PAPER_ALM="{name: alm, kwargs: {temperature: 100.0, divergence: binary_ce, merge_by_space_prob: true, append_space: true, space_prob_threshold: 0.1}}"
declare -A LOSSES=(
  [sft]="[{name: sft}]"
  [alm_sft]="[{name: sft},$PAPER_ALM,{name: alm_latents}]"   # the paper's recipe
  [alm]="[$PAPER_ALM,{name: alm_latents}]"
  [uld_sft]="[{name: sft},{name: uld}]"
  [dskd_sft]="[{name: sft},{name: dskd}]"
  [mined_sft]="[{name: sft},{name: mined}]"
)
source results/transfer_scoring.sh   # TEXTS, score, evaluate

train() {  # TARGET METHOD SEED -> the run folder
  local run="$RUNS/$1/$2/seed$3"
  [ -f "$run/wall_seconds" ] && return
  mkdir -p "$run"
  local start=$SECONDS
  .venv/bin/ctd fit --config "configs/transfer/paper/smollm2_to_$1.yaml" \
    "losses=${LOSSES[$2]}" "seed=$3" "trainer.max_steps=$STEPS" \
    "trainer.val_check_interval=$STEPS" "optim.warmup_steps=$((STEPS / 10))" \
    "trainer.downstream_tasks=[]" "trainer.validate_before_fit=false" \
    "trainer.default_root_dir=$run" "export_dir=$run/export" > "$run.log" 2>&1
  echo $((SECONDS - start)) > "$run/wall_seconds"
  rm -rf "$run/checkpoints"   # optimizer state; the export is what is scored
  local dest="$DEST/$1/$2/seed$3"
  mkdir -p "$dest"
  cp "$run/metrics.json" "$run/config.yaml" "$run/wall_seconds" "$dest/"
  cp "$run.log" "$dest/run.log"
}

for job in $JOBS; do
  IFS=: read -r first second third <<< "$job"
  if [ "$first" = zero_shot ]; then
    case $second in
      teacher) model=$CTD_TEACHER ;;
      fvt_*) model=$RUNS/fvt_students/$second
             [ -d "$model" ] || .venv/bin/python results/make_fvt_students.py "$RUNS/fvt_students" ;;
    esac
    evaluate "$model" "$DEST/zero_shot" "$second"
  else
    train "$first" "$second" "$third"
    evaluate "$RUNS/$first/$second/seed$third/export" "$DEST/$first/$second/seed$third" downstream
  fi
done
