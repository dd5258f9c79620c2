"""`ctd specdec`: speculative decoding of prompts with a drafter, against plain target decoding.

    ctd specdec --target T --drafter D --prompts FILE.jsonl --gamma G [--temperature X]
                [--top-p P] [--max-new-tokens N] [--limit K] [--json]

Prints alpha, tau (tokens per target call), MBSU, tokens/s of both decodings and the outputs.
A drafter whose tokenizer differs from the target's is used through token-level intersection
(TLI, `ctd.specdec.vocab.TokenIntersection`) by itself. Input errors exit 2 before any decoding.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ctd specdec`."""
    parser = argparse.ArgumentParser(prog="ctd specdec", description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="target model folder or hub id")
    parser.add_argument("--drafter", required=True, help="drafter model folder (with tokenizer)")
    parser.add_argument("--prompts", required=True, help="JSONL with `messages` or `prompt`")
    parser.add_argument("--gamma", type=int, required=True, help="drafts per block (>= 1)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (default 1)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="per prompt (default 64)")
    parser.add_argument("--limit", type=int, default=None, help="first K prompts only")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of input errors")
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    from ctd.decoding.sampling import check_sampling_args

    if args.gamma < 1:
        raise ValueError(f"--gamma must be at least 1, got {args.gamma}")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    check_sampling_args(args.temperature, args.top_p)


def _load_tokenizer(path: str, role: str) -> Any:
    from ctd.models.loading import load_tokenizer

    try:
        return load_tokenizer(path)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"the {role} {path} has no usable tokenizer ({error})") from None


def _logit_count(model: Any) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


def _context_length(model: Any) -> int | None:
    value = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    return int(value) if value else None


def _check_lengths(role: str, model: Any, prompts: list[list[int]], extra: int) -> None:
    """Every prompt plus the new tokens and one block of drafts fits the model's context."""
    context = _context_length(model)
    for index, prompt in enumerate(prompts):
        if context is not None and len(prompt) + extra > context:
            raise ValueError(
                f"prompt {index} is {len(prompt)} {role} tokens; with --max-new-tokens and "
                f"--gamma it needs {len(prompt) + extra} positions, more than the {role}'s "
                f"context of {context}"
            )


def _vocabulary(args: argparse.Namespace, models: tuple[Any, Any], tokenizers: tuple[Any, Any]):  # type: ignore[no-untyped-def]
    """The drafter <-> target conversion: shared tokenizer, or TLI for another tokenizer."""
    from ctd.models.loading import check_model_tokenizer_match
    from ctd.specdec.vocab import SharedVocabulary, TokenIntersection

    (target, drafter), (target_tokenizer, drafter_tokenizer) = models, tokenizers
    check_model_tokenizer_match(target, target_tokenizer)
    check_model_tokenizer_match(drafter, drafter_tokenizer)
    if drafter_tokenizer.get_vocab() == target_tokenizer.get_vocab():
        if _logit_count(drafter) != _logit_count(target):
            raise ValueError(
                f"the drafter shares the target's tokenizer but scores {_logit_count(drafter)} "
                f"tokens and the target {_logit_count(target)}: its vocabulary does not match"
            )
        return SharedVocabulary()
    return TokenIntersection.from_tokenizers(
        drafter_tokenizer,
        target_tokenizer,
        drafter_vocab_size=_logit_count(drafter),
        target_vocab_size=_logit_count(target),
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Validate and load everything, then decode; returns the report."""
    import torch
    from transformers.utils import logging as hf_logging

    from ctd.decoding.cached import CachedModel
    from ctd.models.loading import load_causal_lm
    from ctd.specdec.evaluate import (
        SpecDecSettings,
        encode_prompt,
        evaluate_drafter,
        read_prompt_records,
    )
    from ctd.specdec.vocab import SharedVocabulary

    _check_arguments(args)
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # one line per error
    records = read_prompt_records(args.prompts, args.limit)
    target_tokenizer = _load_tokenizer(args.target, "target")
    drafter_tokenizer = _load_tokenizer(args.drafter, "drafter")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype)
    target: Any = load_causal_lm(args.target, dtype=dtype)
    drafter: Any = load_causal_lm(args.drafter, dtype=dtype)
    target, drafter = target.to(device), drafter.to(device)
    vocabulary = _vocabulary(args, (target, drafter), (target_tokenizer, drafter_tokenizer))
    shared = isinstance(vocabulary, SharedVocabulary)
    prompts = [encode_prompt(target_tokenizer, record) for record in records]
    # a template-less target reads plain text: so does its drafter, template or not
    chat = None if getattr(target_tokenizer, "chat_template", None) else False
    drafter_prompts = (
        None if shared else [encode_prompt(drafter_tokenizer, r, chat=chat) for r in records]
    )
    extra = args.max_new_tokens + args.gamma + 1
    _check_lengths("target", target, prompts, extra)
    _check_lengths("drafter", drafter, drafter_prompts or prompts, extra)
    settings = SpecDecSettings(
        args.gamma, args.max_new_tokens, args.temperature, args.top_p, args.seed
    )
    report = evaluate_drafter(
        CachedModel(target), CachedModel(drafter), prompts, settings,
        eos_token_id=target.generation_config.eos_token_id or target_tokenizer.eos_token_id,
        vocabulary=vocabulary, drafter_prompts=drafter_prompts,
    )  # fmt: skip
    if not shared:
        report["shared_tokens"] = vocabulary.shared_count
    report["target"], report["drafter"], report["device"] = args.target, args.drafter, device
    output_ids = report.pop("output_ids")
    report["outputs"] = [
        target_tokenizer.decode(ids, skip_special_tokens=True) for ids in output_ids
    ]
    return report


def _print_table(report: dict[str, Any]) -> None:
    keys = ("gamma", "temperature", "alpha", "tau", "analytic_tau", "mbsu", "cost_ratio",
            "tokens_per_s", "baseline_tokens_per_s", "speedup", "conversion_share")  # fmt: skip
    for key in keys:
        if key in report:
            value = report[key]
            print(f"{key:<22}{value:.4g}" if isinstance(value, float) else f"{key:<22}{value}")


def main(argv: list[str]) -> int:
    """Entry point of `ctd specdec`."""
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (ValueError, OSError) as error:
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(error).split()) or repr(error)
        print(f"ctd specdec: error: {message}", file=sys.stderr)
        return 2
    _print_table(report)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    return 0
