#!/usr/bin/env bash
# Reproduces results/transfer.md: SmolLM2-135M-Instruct moved (a) to bytes and (b) to the Qwen2
# tokenizer with SFT only, ALM, ALM + SFT and ULD + SFT at an equal budget (same data, steps, seed).
# Needs the SmolLM2 checkpoint that `ctd demo` caches, and ../shared/assets/tokenizers/qwen2.
# Then copies each run's small outputs to results/<basename of OUT>/ and regenerates the tables
# of results/transfer.md from them (results/summarize_transfer.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export CTD_TEACHER=${CTD_TEACHER:-$HOME/.cache/ctd/smollm2-135m-instruct-float32}
export CTD_STUDENT_TOKENIZER=${CTD_STUDENT_TOKENIZER:-../shared/assets/tokenizers/qwen2}
OUT=${OUT:-runs/transfer}
DEST=${DEST:-results/$(basename "$OUT")}   # where the committed copies go
STEPS=${STEPS:-20}                       # the budget, equal for every method
METHODS=${METHODS:-sft alm alm_sft uld_sft}
TARGETS=${TARGETS:-bytes qwen2}
declare -A LOSSES=(
  [sft]="[{name: sft}]"
  [alm]="[{name: alm}]"
  [alm_sft]="[{name: alm},{name: sft}]"
  [uld_sft]="[{name: uld},{name: sft}]"
)
for method in $METHODS; do
  for target in $TARGETS; do
    run="$OUT/$target/$method"
    [ -f "$run/metrics.json" ] && continue
    # The untrained student is the same for every method: validate it once per target.
    before=false; [ "$method" = sft ] && before=true
    mkdir -p "$run"
    start=$SECONDS
    .venv/bin/ctd fit --config "configs/experiments/smollm2_${target}_small.yaml" \
      "losses=${LOSSES[$method]}" "trainer.default_root_dir=$run" \
      "trainer.validate_before_fit=$before" "trainer.max_steps=$STEPS" \
      "trainer.val_check_interval=$STEPS" > "$run.log" 2>&1
    echo $((SECONDS - start)) > "$run/wall_seconds"
  done
done
.venv/bin/python results/summarize_transfer.py collect "$OUT" "$DEST"
.venv/bin/python results/summarize_transfer.py write
.venv/bin/python results/summarize_transfer.py table "$DEST"
