"""`ctd make-drafter`: a small drafter for speculative decoding, on the target's tokenizer.

    ctd make-drafter --target T --layers K --output DIR [--fresh [--hidden-size D ...]] [--json]

Without `--fresh`: the target's first K blocks plus its embeddings, final norm and head, copied
bit for bit (tied where the target ties them). With `--fresh`: a random model of the target's
architecture and vocabulary with K layers (and the given widths). The folder (safetensors plus
the target's tokenizer) loads with plain transformers; train it with `ctd fit` task `drafter`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ctd.cli_support import report_user_error

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ctd make-drafter`."""
    parser = argparse.ArgumentParser(prog="ctd make-drafter", description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="target model folder, hub id or .gguf")
    parser.add_argument("--layers", type=int, required=True, help="transformer blocks to keep")
    parser.add_argument("--output", required=True, help="folder for the drafter")
    parser.add_argument("--fresh", action="store_true", help="random init instead of trimming")
    parser.add_argument("--hidden-size", type=int, help="with --fresh: width (default target's)")
    parser.add_argument("--intermediate-size", type=int, help="with --fresh: MLP width")
    parser.add_argument("--heads", type=int, help="with --fresh: attention heads")
    parser.add_argument("--seed", type=int, default=0, help="with --fresh: init seed")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of input errors")
    return parser


def run(args: argparse.Namespace) -> dict[str, object]:
    """Build and save the drafter; returns the report."""
    import torch

    from ctd.models.export import export_pretrained
    from ctd.models.loading import load_causal_lm, load_tokenizer
    from ctd.models.trim import fresh_drafter, trimmed_drafter

    widths = (args.hidden_size, args.intermediate_size, args.heads)
    if not args.fresh and any(width is not None for width in widths):
        raise ValueError("--hidden-size, --intermediate-size and --heads need --fresh")
    if Path(args.output).exists() and any(Path(args.output).iterdir()):
        raise ValueError(f"--output {args.output} exists and is not empty")
    tokenizer = load_tokenizer(args.target)
    target = load_causal_lm(args.target, dtype=getattr(torch, args.dtype))
    if args.fresh:
        drafter = fresh_drafter(
            target,
            num_layers=args.layers,
            hidden_size=args.hidden_size,
            intermediate_size=args.intermediate_size,
            num_attention_heads=args.heads,
            seed=args.seed,
        )
    else:
        drafter = trimmed_drafter(target, args.layers)
    export_pretrained(drafter, tokenizer, Path(args.output))
    drafter_parameters = sum(p.numel() for p in drafter.parameters())
    target_parameters = sum(p.numel() for p in target.parameters())
    return {
        "output": str(args.output),
        "kind": "fresh" if args.fresh else "trimmed",
        "layers": args.layers,
        "target_layers": int(target.config.num_hidden_layers),
        "drafter_parameters": drafter_parameters,
        "target_parameters": target_parameters,
        "parameter_ratio": round(drafter_parameters / target_parameters, 4),
    }


def main(argv: list[str]) -> int:
    """Entry point of `ctd make-drafter`; bad input prints one line and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (ValueError, OSError, TypeError) as error:
        return report_user_error("ctd make-drafter", error, debug=args.debug)
    print(
        f"{report['kind']} drafter with {report['layers']} of {report['target_layers']} layers "
        f"({report['drafter_parameters']:,} parameters, {report['parameter_ratio']:.1%} of the "
        f"target's) saved to {report['output']}"
    )
    if args.json:
        print(json.dumps(report))
    return 0
