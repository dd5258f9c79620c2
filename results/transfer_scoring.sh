# Sourced by results/run_transfer_equal.sh and results/run_multi_teacher_fvt.sh: the texts and
# the `ctd evaluate` calls every scored model goes through. Needs RUNS, TASKS and LIMIT.
# shellcheck shell=bash
TEXTS=${TEXTS:-runs/transfer_equal/texts}
[ -f "$TEXTS/indomain.en.txt" ] || .venv/bin/python results/transfer_ood_texts.py "$TEXTS" 16384
text_args=()
for language in en de fr ja zh-cn; do text_args+=(--text-file "$TEXTS/ood.$language.txt"); done

score() {  # MODEL_DIR OUT_JSON ARGS... : one `ctd evaluate --json` object, kept when complete
  local model=$1 out=$2 start=$SECONDS
  shift 2
  [ -s "$out" ] && return
  mkdir -p "$(dirname "$out")"
  .venv/bin/ctd evaluate --model "$model" "$@" --json 2> "$out.log" | tail -n 1 > "$out.tmp"
  mv "$out.tmp" "$out"
  echo $((SECONDS - start)) > "${out%.json}.eval_seconds"
  rm -f "$out.log"
}

evaluate() {  # MODEL_DIR OUT_DIR NAME [ARGS...]: NAME.json (tasks, out-of-domain), NAME.indomain.json
  score "$1" "$2/$3.json" --tasks "$TASKS" --limit "$LIMIT" "${text_args[@]}" "${@:4}"
  score "$1" "$2/$3.indomain.json" --tasks "" --text-file "$TEXTS/indomain.en.txt" "${@:4}"
}

