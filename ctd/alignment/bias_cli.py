"""`ctd tokenizer-bias`: per-token tokenization-bias statistics of a tokenizer pair.

Computed from a corpus and saved as .npz for `CrossTokenizerCollator(mode="unbiased", bias=path)`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ctd.alignment.bias import TokenizationBias, token_bias
from ctd.alignment.cli import load_tokenizer
from ctd.alignment.encode import encode_batch
from ctd.alignment.token_bytes import token_bytes

__all__ = ["main"]


def _corpus_batches(paths: list[str], max_bytes: int, batch_size: int = 256) -> Iterator[list[str]]:
    """Paragraphs of the corpus files, in batches, until `max_bytes` UTF-8 bytes are read.

    The paragraph that reaches the limit is kept whole.
    """
    batch: list[str] = []
    total = 0
    for path in paths:
        for paragraph in Path(path).read_text(encoding="utf-8", errors="replace").split("\n\n"):
            if not paragraph.strip():
                continue
            batch.append(paragraph)
            total += len(paragraph.encode("utf-8"))
            if len(batch) == batch_size:
                yield batch
                batch = []
            if total >= max_bytes:
                break
        if total >= max_bytes:
            break
    if batch:
        yield batch


def _ids(tokenizer: object, batches: list[list[str]]) -> Iterator[npt.NDArray[np.int64]]:
    for batch in batches:
        yield encode_batch(tokenizer, batch, add_special_tokens=False).input_ids


def main(argv: list[str]) -> int:
    """Entry point of `ctd tokenizer-bias`."""
    parser = argparse.ArgumentParser(prog="ctd tokenizer-bias", description=__doc__)
    parser.add_argument("--teacher", required=True, help="tokenizer folder or tokenizer.json")
    parser.add_argument("--student", required=True, help="tokenizer folder or tokenizer.json")
    parser.add_argument("--corpus", required=True, nargs="+", help="plain-text files")
    parser.add_argument("--output", required=True, help="where to write the .npz")
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=5_000_000,
        help="stop reading the corpus after this many UTF-8 bytes (whole paragraphs)",
    )
    parser.add_argument("--threshold", type=float, default=0.1)
    args = parser.parse_args(argv)
    if args.max_bytes <= 0:
        parser.error(f"--max-bytes must be positive, got {args.max_bytes}")
    for path in args.corpus:
        if not Path(path).is_file():
            parser.error(f"no such corpus file: {path}")
    batches = list(_corpus_batches(args.corpus, args.max_bytes))
    teacher, student = load_tokenizer(args.teacher), load_tokenizer(args.student)
    bias = TokenizationBias(
        teacher_bias=token_bias(token_bytes(teacher), _ids(teacher, batches)),
        student_bias=token_bias(token_bytes(student), _ids(student, batches)),
        threshold=args.threshold,
    )
    bias.save(args.output)
    for side, values in (("teacher", bias.teacher_bias), ("student", bias.student_bias)):
        share = float(np.mean(values <= args.threshold))
        print(f"{side}: {len(values)} tokens, {share:.1%} at or below bias {args.threshold}")
    print(f"wrote {args.output}")
    return 0
