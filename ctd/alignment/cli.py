"""`ctd align`: show the chunks of two tokenizations of a text side by side."""

from __future__ import annotations

import argparse
import sys

from ctd.alignment.align import MODES, align
from ctd.alignment.encode import encode
from ctd.alignment.ragged import TokenizedText
from ctd.alignment.token_bytes import token_bytes

__all__ = ["format_chunks", "load_tokenizer", "main"]

_COLOURS = ("\033[30;46m", "\033[30;43m", "\033[30;42m", "\033[30;45m")
_RESET = "\033[0m"


def load_tokenizer(path: str) -> object:
    """A tokenizer from a folder (transformers) or a tokenizer.json file."""
    if path.endswith(".json"):
        from tokenizers import Tokenizer

        return Tokenizer.from_file(path)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _pieces(data: bytes, tokens: TokenizedText, chunk_index: list[int]) -> list[tuple[str, int]]:
    out = []
    for start, end, chunk in zip(tokens.byte_starts, tokens.byte_ends, chunk_index, strict=True):
        piece = data[int(start) : int(end)].decode("utf-8", "backslashreplace")
        visible = piece.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
        out.append((visible if end > start else "∅", int(chunk)))
    return out


def format_chunks(
    text: str,
    teacher: TokenizedText,
    student: TokenizedText,
    *,
    mode: str,
    colour: bool,
    tables: tuple[object, object],
) -> str:
    """One line per chunk: its bytes, then the teacher's and the student's tokens."""
    teacher_table, student_table = tables
    result = align(
        teacher,
        student,
        mode=mode,
        teacher_token_bytes=teacher_table,  # type: ignore[arg-type]
        student_token_bytes=student_table,  # type: ignore[arg-type]
    )
    data = text.encode("utf-8")
    teacher_pieces = _pieces(data, teacher, result.teacher_chunk_index.tolist())
    student_pieces = _pieces(data, student, result.student_chunk_index.tolist())
    lines = [f"{result.num_chunks} chunks, {len(teacher)} teacher / {len(student)} student tokens"]
    for chunk in [*range(result.num_chunks), -1]:
        span = (
            data[result.chunk_byte_starts[chunk] : result.chunk_byte_ends[chunk]]
            if chunk >= 0
            else b""
        )
        head = (
            f"[{chunk:>3}] {span.decode('utf-8', 'backslashreplace')!r:<24}"
            if chunk >= 0
            else "[ -1] (in no chunk)            "
        )
        t = " | ".join(p for p, c in teacher_pieces if c == chunk)
        s = " | ".join(p for p, c in student_pieces if c == chunk)
        line = f"{head} T: {t:<30} S: {s}"
        if colour and chunk >= 0:
            line = f"{_COLOURS[chunk % len(_COLOURS)]}{line}{_RESET}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Entry point of `ctd align`."""
    parser = argparse.ArgumentParser(prog="ctd align", description=__doc__)
    parser.add_argument("--teacher", required=True, help="tokenizer folder or tokenizer.json")
    parser.add_argument("--student", required=True, help="tokenizer folder or tokenizer.json")
    parser.add_argument("--text", required=True, help="the text to align")
    parser.add_argument(
        "--mode", default="unconstrained", choices=[m for m in MODES if m != "unbiased"]
    )
    parser.add_argument("--no-special-tokens", action="store_true", help="no BOS/EOS template")
    parser.add_argument("--colour", choices=["auto", "always", "never"], default="auto")
    args = parser.parse_args(argv)
    teacher_tokenizer, student_tokenizer = (
        load_tokenizer(args.teacher),
        load_tokenizer(args.student),
    )
    add = not args.no_special_tokens
    (teacher,) = encode(teacher_tokenizer, [args.text], add_special_tokens=add)
    (student,) = encode(student_tokenizer, [args.text], add_special_tokens=add)
    colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
    tables = (token_bytes(teacher_tokenizer), token_bytes(student_tokenizer))
    print(format_chunks(args.text, teacher, student, mode=args.mode, colour=colour, tables=tables))
    return 0
