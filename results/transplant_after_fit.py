"""results/transplant.md, after training: the fitted transplant students on the zero-shot bytes.

Each start saved by `results/transplant_eval.py --save-dir` was distilled from SmolLM2 with ALM +
SFT at one equal budget (`results/run_transplant_fit.sh`); this scores every export against the
base model on exactly the English and multilingual documents of the zero-shot part (the byte
counts are checked against results/transplant/zero_shot.json) and adds each run's wall time and
last training losses.

    .venv/bin/python results/transplant_after_fit.py --runs runs/transplant_fit \
        --inits omp_k64 fvt mean random --out results/transplant/after_fit.json

The last stdout line is the JSON object also written to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from transplant_eval import Scorer, held_out_texts  # noqa: E402

from ctd.models import load_causal_lm, load_tokenizer, smollm2_checkpoint  # noqa: E402

ZERO_SHOT = Path(__file__).resolve().parent / "transplant" / "zero_shot.json"
TRAIN_KEYS = ("train/alm", "train/sft", "val/student_bpb", "val/teacher_bpb")


def checked_texts(docs: int, max_bytes: int) -> dict[str, list[str]]:
    """The zero-shot part's documents; an error if their byte counts differ from its record."""
    texts = held_out_texts(docs, max_bytes)
    recorded = json.loads(ZERO_SHOT.read_text())["texts"]
    for name, documents in texts.items():
        num_bytes = sum(len(text.encode()) for text in documents)
        if num_bytes != recorded[name]["bytes"]:
            raise SystemExit(
                f"{name}: {num_bytes} bytes, but zero_shot.json scored {recorded[name]['bytes']}"
                " (pass the zero-shot run's --docs and --max-bytes)"
            )
    return texts


def run_record(run: Path) -> dict[str, Any]:
    """Wall time, steps and last logged losses of one `ctd fit` run."""
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "wall_seconds": int((run / "wall_seconds").read_text()),
        **{key: round(metrics[key], 4) for key in TRAIN_KEYS if key in metrics},
    }


def main() -> None:
    """Score every fitted start; write --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--inits", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--max-bytes", type=int, default=600)
    args = parser.parse_args()
    base_path = smollm2_checkpoint(Path.home() / ".cache" / "ctd")
    base, base_tok = load_causal_lm(str(base_path)), load_tokenizer(str(base_path))
    student_tok = load_tokenizer(str(args.runs / args.inits[0] / "export"))
    texts = checked_texts(args.docs, args.max_bytes)
    scorers = {name: Scorer(base, base_tok, student_tok, docs) for name, docs in texts.items()}
    scores: dict[str, Any] = {}
    for init in args.inits:
        student = load_causal_lm(str(args.runs / init / "export")).eval()
        scores[init] = {text: scorer.score(student) for text, scorer in scorers.items()}
        scores[init]["run"] = run_record(args.runs / init)
        print(init, scores[init], flush=True)
        del student
    config = Path("configs/experiments/smollm2_gemma3_transplant_fit.yaml")
    result = {"config": str(config), "scores": scores}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
