# Sourced by results/run_drafter.sh and results/run_drafter_budget.sh (needs PY, TARGET, RUNS):
# the equal-budget training of one trimmed SmolLM2 drafter, the same data, batch and learning
# rate for every loss; only the loss, the step count and where the runs go differ.

# fit_drafter LOSS STEPS RUN_DIR RESULT_DIR: train $RUNS/trimmed4 with LOSS for STEPS steps on
# $RUNS' generated data; the run goes to RUN_DIR/fit/LOSS, the drafter to RUN_DIR/LOSS, and its
# metrics.json and wall_seconds to RESULT_DIR/fit/LOSS.
fit_drafter() {
  local loss=$1 steps=$2 run_dir=$3 result_dir=$4 start
  start=$(date +%s)
  CTD_TARGET="$TARGET" CTD_DRAFTER="$RUNS/trimmed4" $PY -m ctd.cli fit \
    --config configs/drafter/smollm2_trimmed_tvdpp.yaml loss.name=$loss \
    "data.train_files=[$RUNS/train_generated.jsonl]" "data.val_files=[$RUNS/eval_generated.jsonl]" \
    data.max_teacher_length=128 data.max_student_length=128 trainer.max_steps=$steps \
    optim.lr=5e-4 optim.warmup_steps=3 trainer.val_check_interval=$steps \
    trainer.limit_val_batches=2 trainer.validate_before_fit=true \
    trainer.enable_progress_bar=false trainer.checkpoint_every_n_steps=100000 \
    trainer.default_root_dir=$run_dir/fit/$loss export_dir=$run_dir/$loss
  mkdir -p "$result_dir/fit/$loss"
  cp "$run_dir/fit/$loss/metrics.json" "$result_dir/fit/$loss/metrics.json"
  echo $(( $(date +%s) - start )) > "$result_dir/fit/$loss/wall_seconds"
}
