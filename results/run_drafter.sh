#!/usr/bin/env bash
# results/drafter.md: SmolLM2-135M-Instruct target, 4-layer trimmed drafters trained at an equal
# budget with TVD++, forward KL and TVD, judged by speculative decoding (CPU, one thread).
#   nice -n 10 results/run_drafter.sh > runs/drafter.log 2>&1
# then: results/summarize_drafter.py write
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=""
PY=.venv/bin/python
RUNS=runs/drafter
OUT=results/drafter
STEPS=${STEPS:-12}       # training steps per loss (batch 4, 128 tokens)
TRAIN_PROMPTS=${TRAIN_PROMPTS:-32}
SPECDEC_PROMPTS=${SPECDEC_PROMPTS:-3}
SPECDEC_TOKENS=${SPECDEC_TOKENS:-24}
mkdir -p "$RUNS" "$OUT/fit" "$OUT/specdec"
TARGET=$($PY -c "from pathlib import Path; from ctd.models import smollm2_checkpoint; print(smollm2_checkpoint(Path.home() / '.cache' / 'ctd'))")
echo "target: $TARGET; commit $(git rev-parse --short HEAD)"

# 1. distillation data: the target's own answers (sampled), and held-out answers for validation
for split in train eval; do
  limit=$([ $split = train ] && echo $TRAIN_PROMPTS || echo 8)
  $PY -m ctd.cli generate --model "$TARGET" --prompts "$OUT/${split}_prompts.jsonl" \
    --output "$RUNS/${split}_generated.jsonl" --temperature 1 --top-p 0.95 \
    --max-new-tokens 64 --batch-size 8 --limit $limit --no-progress --json
done

# 2. the drafter: the target's first 4 of 30 blocks, embeddings, norm and (tied) head
[ -d "$RUNS/trimmed4" ] || $PY -m ctd.cli make-drafter --target "$TARGET" --layers 4 \
  --output "$RUNS/trimmed4" --json

# 3. equal budget: the same data, steps, batch and learning rate for every loss
for loss in tvdpp kl tvd; do
  start=$(date +%s)
  CTD_TARGET="$TARGET" CTD_DRAFTER="$RUNS/trimmed4" $PY -m ctd.cli fit \
    --config configs/drafter/smollm2_trimmed_tvdpp.yaml loss.name=$loss \
    "data.train_files=[$RUNS/train_generated.jsonl]" "data.val_files=[$RUNS/eval_generated.jsonl]" \
    data.max_teacher_length=128 data.max_student_length=128 trainer.max_steps=$STEPS \
    optim.lr=5e-4 optim.warmup_steps=3 trainer.val_check_interval=$STEPS \
    trainer.limit_val_batches=2 trainer.validate_before_fit=true \
    trainer.enable_progress_bar=false trainer.checkpoint_every_n_steps=100000 \
    trainer.default_root_dir=$RUNS/fit/$loss export_dir=$RUNS/$loss
  mkdir -p "$OUT/fit/$loss"
  cp "$RUNS/fit/$loss/metrics.json" "$OUT/fit/$loss/metrics.json"
  echo $(( $(date +%s) - start )) > "$OUT/fit/$loss/wall_seconds"
done

# 4. speculative decoding on the held-out prompts: alpha, tau, MBSU, tokens/s
for drafter in trimmed4 tvdpp kl tvd; do
  for gamma in 3 5; do
    for temperature in 0 1; do
      $PY -m ctd.cli specdec --target "$TARGET" --drafter "$RUNS/$drafter" \
        --prompts "$OUT/eval_prompts.jsonl" --gamma $gamma --temperature $temperature \
        --max-new-tokens $SPECDEC_TOKENS --limit $SPECDEC_PROMPTS --device cpu --json \
        | tail -n 1 > "$OUT/specdec/${drafter}_g${gamma}_t${temperature}.json"
      echo "specdec $drafter gamma=$gamma T=$temperature done"
    done
  done
done
$PY results/summarize_drafter.py write
