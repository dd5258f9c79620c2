"""`ctd generate`: a target answers prompts; the answers are a drafter's distillation data.

    ctd generate --model TARGET --prompts FILE --output OUT.jsonl [--temperature 1.0]
                 [--top-p 1.0] [--max-new-tokens 256] [--batch-size 8] [--limit N] [--json]

Resumable: OUT is appended to and the ids already in it are skipped; a record cut off by a
killed run is dropped and generated again. See `ctd.data.generate` for the record format.
"""

from __future__ import annotations

import argparse
import json
import time

from ctd.cli_support import report_user_error

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ctd generate`."""
    parser = argparse.ArgumentParser(prog="ctd generate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="target model folder, hub id or .gguf")
    parser.add_argument("--prompts", required=True, help="JSONL: `messages` or `prompt`, `id`")
    parser.add_argument("--output", required=True, help="JSONL to append the answers to")
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="only the first N prompts of the file")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of input errors")
    return parser


def run(args: argparse.Namespace) -> dict[str, object]:
    """Load the target and answer the prompts; returns the report."""
    import torch

    from ctd.data.generate import GenerationSettings, generate_answers, read_prompts
    from ctd.models import check_model_tokenizer_match, load_causal_lm, load_tokenizer

    settings = GenerationSettings(
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    prompts = read_prompts(args.prompts)[: args.limit]
    start = time.perf_counter()
    tokenizer = load_tokenizer(args.model)
    model = load_causal_lm(args.model, dtype=getattr(torch, args.dtype))
    check_model_tokenizer_match(model, tokenizer)
    counts = generate_answers(
        model, tokenizer, prompts, args.output, settings, progress=not args.no_progress
    )
    return {"output": args.output, **counts, "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str]) -> int:
    """Entry point of `ctd generate`; bad input prints one line and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (ValueError, OSError, TypeError) as error:
        return report_user_error("ctd generate", error, debug=args.debug)
    print(
        f"{report['written']} answers appended to {report['output']} "
        f"({report['skipped']} already there) in {report['seconds']} s"
    )
    if args.json:
        print(json.dumps(report))
    return 0
