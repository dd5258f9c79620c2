#!/usr/bin/env bash
# results/drafter.md: SmolLM2-135M-Instruct target, 4-layer trimmed drafters trained at an equal
# budget with TVD++, forward KL and TVD, judged by speculative decoding (CPU, one thread); then a
# cross-tokenizer drafter (the same 4 SmolLM2 blocks, SmolLM2's tokenizer) for Gemma-3-270m,
# trained with ALM on Gemma-3's own answers. Outputs already there are kept (rerun = resume).
#   nice -n 10 results/run_drafter.sh > runs/drafter.log 2>&1
# then: results/summarize_drafter.py write
set -euo pipefail
cd "$(dirname "$0")/.."
source results/drafter_fit.sh
export OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=""
PY=.venv/bin/python
RUNS=runs/drafter
OUT=results/drafter
STEPS=${STEPS:-12}       # training steps per loss (batch 4, 128 tokens)
TRAIN_PROMPTS=${TRAIN_PROMPTS:-32}
SPECDEC_PROMPTS=${SPECDEC_PROMPTS:-3}
SPECDEC_TOKENS=${SPECDEC_TOKENS:-24}
CROSS_STEPS=${CROSS_STEPS:-4}  # ALM steps for the cross-tokenizer drafter (batch 4)
CROSS_TRAIN_PROMPTS=${CROSS_TRAIN_PROMPTS:-24}  # Gemma-3 answers to train it on
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
  fit_drafter "$loss" $STEPS "$RUNS" "$OUT"
done

# 4. speculative decoding on the held-out prompts: alpha, tau, MBSU, tokens/s
specdec() {  # TARGET DRAFTER GAMMA TEMPERATURE OUTPUT (kept when already there)
  [ -s "$5" ] && return 0
  $PY -m ctd.cli specdec --target "$1" --drafter "$2" --prompts "$OUT/eval_prompts.jsonl" \
    --gamma $3 --temperature $4 --max-new-tokens $SPECDEC_TOKENS --limit $SPECDEC_PROMPTS \
    --device cpu --json | tail -n 1 > "$5.tmp" && mv "$5.tmp" "$5"
  echo "specdec $2 gamma=$3 T=$4 done"
}
for drafter in trimmed4 tvdpp kl tvd; do
  for gamma in 3 5; do
    for temperature in 0 1; do
      specdec "$TARGET" "$RUNS/$drafter" $gamma $temperature \
        "$OUT/specdec/${drafter}_g${gamma}_t${temperature}.json"
    done
  done
done

# 5. cross-tokenizer: Gemma-3-270m answers the training prompts; the SmolLM2 trimmed drafter
# (TLI decoding) before and after ALM + SFT (weighted sum) on those answers (plain text: the
# base Gemma-3 has no chat template, so the drafter reads the same plain prompt as the target)
GEMMA=$($PY -c "from pathlib import Path; from ctd.models import gemma3_270m_checkpoint; print(gemma3_270m_checkpoint(Path.home() / '.cache' / 'ctd'))")
CROSS=runs/drafter_gemma3
mkdir -p "$CROSS" "$OUT/cross"
$PY -m ctd.cli generate --model "$GEMMA" --prompts "$OUT/train_prompts.jsonl" \
  --output "$CROSS/train_generated.jsonl" --temperature 1 --top-p 0.95 \
  --max-new-tokens 64 --batch-size 8 --limit $CROSS_TRAIN_PROMPTS --no-progress --json
if [ ! -f "$OUT/cross/fit.json" ]; then
  start=$(date +%s)
  CTD_TARGET="$GEMMA" CTD_DRAFTER="$RUNS/trimmed4" $PY -m ctd.cli fit \
    --config configs/drafter/gemma3_smollm2_alm.yaml loss_aggregation=weighted_sum \
    "data.train_files=[$CROSS/train_generated.jsonl]" data.max_teacher_length=128 \
    data.max_student_length=128 trainer.max_steps=$CROSS_STEPS optim.lr=5e-4 \
    optim.warmup_steps=1 trainer.log_every_n_steps=1 trainer.enable_progress_bar=false \
    trainer.checkpoint_every_n_steps=100000 trainer.default_root_dir=$CROSS/fit \
    export_dir=$CROSS/alm
  cp "$CROSS/fit/metrics.json" "$OUT/cross/fit_metrics.json"
  printf '{"steps": %d, "batch_size": 4, "train_texts": %d, "wall_seconds": %d}\n' \
    $CROSS_STEPS $(wc -l < "$CROSS/train_generated.jsonl") $(( $(date +%s) - start )) \
    > "$OUT/cross/fit.json"
fi
# the untrained drafter's greedy run first: its outputs (Gemma-3's greedy answers) are the text
# on which both drafters' analytic alpha is measured, one teacher-forced pass each
specdec "$GEMMA" "$RUNS/trimmed4" 3 0 "$OUT/cross/untrained_g3_t0.json"
[ -s "$OUT/cross/analytic.json" ] || $PY results/drafter_cross_analytic.py --target "$GEMMA" \
  --drafter untrained="$RUNS/trimmed4" --drafter alm="$CROSS/alm" \
  --prompts "$OUT/eval_prompts.jsonl" --outputs "$OUT/cross/untrained_g3_t0.json" --gamma 3 \
  > "$OUT/cross/analytic.json"
for drafter in untrained alm; do
  folder=$([ $drafter = untrained ] && echo "$RUNS/trimmed4" || echo "$CROSS/alm")
  for temperature in 0 1; do
    specdec "$GEMMA" "$folder" 3 $temperature "$OUT/cross/${drafter}_g3_t${temperature}.json"
  done
done
$PY results/summarize_drafter.py write
