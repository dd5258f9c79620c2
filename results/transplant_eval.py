"""results/transplant.md, zero-shot part: SmolLM2-135M-Instruct moved onto Gemma-3's tokenizer.

Inits: random, mean, FVT and OMP (Gemma-3-270m as the donor) at several k from one OMP run,
each scored before any training against the base model itself on the same bytes (bits per
byte over the chunks both tokenizations score, `ctd.evaluation.PairedEvaluation`): English
(ctd's held-out demo text) and multilingual (fortunes de/es/ru/zh, Debian reference ja).

    .venv/bin/python results/transplant_eval.py --out results/transplant/zero_shot.json \
        --save-dir /tmp/ctd-transplant

`--save-dir` keeps the random, mean, FVT and largest-k OMP students for the `ctd fit` part
(results/run_transplant_fit.sh). The last stdout line is the JSON object also written to --out.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import resource
import time
from pathlib import Path
from typing import Any

import torch

from ctd.alignment import CrossTokenizerCollator
from ctd.data import demo_corpus_paths
from ctd.evaluation import PairedEvaluation
from ctd.models import (
    export_pretrained,
    fvt_init_embeddings,
    gemma3_270m_checkpoint,
    load_causal_lm,
    load_tokenizer,
    smollm2_checkpoint,
)
from ctd.models.transplant import (
    baseline_init_embeddings,
    omp_codes,
    omp_init_embeddings,
    transplant_plan,
)
from ctd.trainers._common import causal_lm_forward
from ctd.trainers.wiring import Need

CORPORA = Path("/work/shared/assets/corpora/text")
MULTILINGUAL = (
    "fortunes.de.txt",
    "fortunes.es.txt",
    "fortunes.ru.txt",
    "fortunes.zh.chinese.txt",
    "debian-reference.ja.txt",
)
NEEDS = frozenset({Need.TOKEN_LOGPROBS})


def paragraphs(text: str, count: int, max_bytes: int) -> list[str]:
    """The first `count` blank-line separated paragraphs of >= 80 bytes, cut to max_bytes."""
    found = []
    for block in text.split("\n\n"):
        block = block.strip()
        if len(block.encode("utf-8")) < 80:
            continue
        found.append(block.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore"))
        if len(found) == count:
            break
    return found


def held_out_texts(docs: int, max_bytes: int) -> dict[str, list[str]]:
    """English and multilingual held-out documents."""
    with gzip.open(demo_corpus_paths()[1], "rt", encoding="utf-8") as handle:
        english = paragraphs(handle.read(), docs, max_bytes)
    per_file = max(1, docs // len(MULTILINGUAL))
    multilingual = [
        text
        for name in MULTILINGUAL
        for text in paragraphs((CORPORA / name).read_text(encoding="utf-8"), per_file, max_bytes)
    ]
    return {"english": english, "multilingual": multilingual}


class Scorer:
    """Bits per byte of students against the base model, batches and base log-probs cached."""

    def __init__(self, base: Any, base_tok: Any, student_tok: Any, texts: list[str]) -> None:
        collate = CrossTokenizerCollator(
            base_tok, student_tok, max_teacher_length=512, max_student_length=512
        )
        self.batches = [collate(texts[i : i + 4]) for i in range(0, len(texts), 4)]
        with torch.no_grad():
            self.base_logprobs = [
                causal_lm_forward(base, b.teacher_input_ids, b.teacher_attention_mask, NEEDS)[
                    Need.TOKEN_LOGPROBS
                ]
                for b in self.batches
            ]

    def score(self, student: Any) -> dict[str, float]:
        """Base and student bits per byte on the cached batches."""
        evaluation = PairedEvaluation()
        with torch.no_grad():
            for batch, base_logprobs in zip(self.batches, self.base_logprobs, strict=True):
                out = causal_lm_forward(
                    student, batch.student_input_ids, batch.student_attention_mask, NEEDS
                )
                evaluation.update(batch, base_logprobs, out[Need.TOKEN_LOGPROBS])
        return {
            "base_bpb": float(evaluation.teacher_bpb.compute()),
            "student_bpb": float(evaluation.student_bpb.compute()),
        }


def main() -> None:
    """Score every init; write --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--candidates", type=int, default=128)
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--max-bytes", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--save-dir", type=Path, default=None)
    args = parser.parse_args()
    cache = Path.home() / ".cache" / "ctd"
    base_path, donor_path = smollm2_checkpoint(cache), gemma3_270m_checkpoint(cache)
    base, base_tok = load_causal_lm(str(base_path)), load_tokenizer(str(base_path))
    donor, donor_tok = load_causal_lm(str(donor_path)), load_tokenizer(str(donor_path))
    rows = donor.get_input_embeddings().weight.shape[0]
    start = time.perf_counter()
    plan = transplant_plan(base_tok, donor_tok, num_rows=rows)
    plan_seconds = time.perf_counter() - start
    start = time.perf_counter()
    codes = omp_codes(
        donor, plan, args.ks, candidates=args.candidates, batch_size=args.batch_size, progress=True
    )
    omp_seconds = time.perf_counter() - start
    residual = {
        k: float((codes["input"][k].residual_norms).mean())
        / float(donor.get_input_embeddings().weight[plan.approximate].norm(dim=1).mean())
        for k in args.ks
    }
    texts = held_out_texts(args.docs, args.max_bytes)
    scorers = {name: Scorer(base, base_tok, donor_tok, docs) for name, docs in texts.items()}
    inits: dict[str, Any] = {
        "random": lambda m: baseline_init_embeddings(m, base_tok, donor_tok, "random", plan=plan),
        "mean": lambda m: baseline_init_embeddings(m, base_tok, donor_tok, "mean", plan=plan),
        "fvt": lambda m: fvt_init_embeddings(m, base_tok, donor_tok),
    }
    for k in args.ks:
        inits[f"omp_k{k}"] = lambda m, k=k: omp_init_embeddings(
            m, donor, base_tok, donor_tok, k, plan=plan, codes=codes
        )
    scores: dict[str, Any] = {}
    for name, init in inits.items():
        student = init(copy.deepcopy(base)).eval()
        scores[name] = {text: scorer.score(student) for text, scorer in scorers.items()}
        print(name, scores[name], flush=True)
        if args.save_dir is not None and (
            name in {"random", "mean", "fvt"} or name.endswith(f"k{max(args.ks)}")
        ):
            export_pretrained(student, donor_tok, args.save_dir / name)
        del student
    result = {
        "base": str(base_path.name),
        "donor": str(donor_path.name),
        "plan": plan.counts,
        "unanchored_numerals": plan.unanchored_numerals,
        "candidates": args.candidates,
        "plan_seconds": round(plan_seconds, 1),
        "omp_seconds_all_k": round(omp_seconds, 1),
        "omp_relative_residual": residual,
        "texts": {
            name: {"docs": len(d), "bytes": sum(len(t.encode()) for t in d)}
            for name, d in texts.items()
        },
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "scores": scores,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
