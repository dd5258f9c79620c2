"""`ctd transplant`: give a base model a donor model's tokenizer by OMP, without training.

    ctd transplant --base B --donor D --k 64 --output DIR [--numbers digits] [--json]

Anchors (tokens with identical bytes in both vocabularies) are copied; every other donor token
is a sparse combination of k anchors found in the donor's embedding space and applied in the
base's. The result (safetensors, the donor's tokenizer) loads with plain transformers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ctd transplant`."""
    parser = argparse.ArgumentParser(prog="ctd transplant", description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="model folder, hub id or .gguf file")
    parser.add_argument("--donor", required=True, help="model (with tokenizer) to take it from")
    parser.add_argument("--k", type=int, default=64, help="anchors per new token (default 64)")
    parser.add_argument("--output", required=True, help="folder for the transplanted model")
    parser.add_argument(
        "--candidates",
        type=int,
        default=128,
        help="anchors each token searches, most correlated first (0: all, exact OMP; default 128)",
    )
    parser.add_argument(
        "--numbers",
        choices=("omp", "digits"),
        default="omp",
        help="numeral tokens without an anchor: OMP, or the mean of their base pieces",
    )
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of input errors")
    return parser


def _load_tokenizer(path: str, role: str):  # type: ignore[no-untyped-def]
    from ctd.models.loading import load_tokenizer

    try:
        return load_tokenizer(path)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"the {role} {path} has no usable tokenizer ({error})") from None


def run(args: argparse.Namespace) -> dict[str, object]:
    """Transplant and save; returns the report."""
    import torch

    from ctd.models.export import export_pretrained
    from ctd.models.loading import input_embedding_weight, load_causal_lm
    from ctd.models.transplant import init_report, omp_init_embeddings, transplant_plan

    if args.k < 1:
        raise ValueError(f"--k must be at least 1, got {args.k}")
    if Path(args.output).exists() and any(Path(args.output).iterdir()):
        raise ValueError(f"--output {args.output} exists and is not empty")
    start = time.perf_counter()
    base_tokenizer = _load_tokenizer(args.base, "base")
    donor_tokenizer = _load_tokenizer(args.donor, "donor")
    base = load_causal_lm(args.base, dtype=getattr(torch, args.dtype))
    donor = load_causal_lm(args.donor, dtype=getattr(torch, args.dtype))
    rows = int(input_embedding_weight(donor).shape[0])
    plan = transplant_plan(base_tokenizer, donor_tokenizer, num_rows=rows, numbers=args.numbers)
    omp_init_embeddings(
        base,
        donor,
        base_tokenizer,
        donor_tokenizer,
        args.k,
        candidates=args.candidates or None,
        numbers=args.numbers,
        plan=plan,
    )
    export_pretrained(base, donor_tokenizer, Path(args.output))
    return {
        "output": str(args.output),
        "k": args.k,
        "rows": plan.num_rows,
        **init_report(plan),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str]) -> int:
    """Entry point of `ctd transplant`; bad input prints one line and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (ValueError, OSError, TypeError) as error:
        if args.debug:
            traceback.print_exc()
        print(f"ctd transplant: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    numerals = report["unanchored_numerals"]
    assert isinstance(numerals, list)
    print(
        f"copied {report['copied']} rows ({report['anchors']} anchors), "
        f"OMP k={args.k} for {report['approximated']}, digits for {report['digits']}; "
        f"saved to {args.output} in {report['seconds']} s"
    )
    print(f"numeral tokens without an exact anchor: {len(numerals)} {numerals[:20]}")
    if args.json:
        print(json.dumps(report))
    return 0
