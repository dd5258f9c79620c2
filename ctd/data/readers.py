"""Stream training examples from text, JSONL and parquet files (optionally gzip-compressed).

An example is either a text (`str`) or a chat (`{"messages": [{"role", "content"}, ...]}`),
the two forms that `ctd.alignment.CrossTokenizerCollator` accepts. Texts longer than
`max_document_bytes` are split into pieces (see `ctd.data.splitting`); chats are never split.

* Plain text (`.txt`, `.text`, `.md`, `.rst`): documents are separated by blank lines.
* JSONL (`.jsonl`, `.ndjson`): one object per line with a `text` or a `messages` field.
* Parquet (`.parquet`, needs pyarrow): a `text` or a `messages` column, read in row batches.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeAlias

from ctd.data.splitting import split_text

Example: TypeAlias = str | dict[str, Any]
TEXT_SUFFIXES = (".txt", ".text", ".md", ".rst")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
_PARQUET_BATCH_ROWS = 1024


def file_format(path: str | Path) -> str:
    """Return `"text"`, `"jsonl"` or `"parquet"` from the file name (a `.gz` suffix is allowed).

    Raises:
        ValueError: If the suffix is none of the supported ones.
    """
    name = Path(path).name.lower().removesuffix(".gz")
    for file_kind, suffixes in (
        ("text", TEXT_SUFFIXES),
        ("jsonl", JSONL_SUFFIXES),
        ("parquet", PARQUET_SUFFIXES),
    ):
        if name.endswith(suffixes):
            return file_kind
    supported = TEXT_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
    raise ValueError(f"{path}: unsupported file type; expected one of {supported} (or + .gz)")


def check_files_exist(paths: Sequence[str | Path]) -> list[Path]:
    """Return `paths` as `Path`s, checking that each is a readable file of a supported type.

    Raises:
        FileNotFoundError: Naming the first path that is not an existing file.
        ValueError: If a file has an unsupported suffix.
    """
    checked = []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"data file not found: {path}")
        file_format(path)
        checked.append(path)
    return checked


def read_examples(path: str | Path, *, max_document_bytes: int) -> Iterator[Example]:
    """Stream the examples of one file, in file order.

    Args:
        path: A text, JSONL or parquet file, optionally ending in `.gz` (not parquet).
        max_document_bytes: Texts longer than this many UTF-8 bytes are split into pieces.

    Yields:
        Texts (`str`) and chats (`{"messages": [...]}`); whitespace-only texts are skipped.
    """
    file_kind = file_format(path)
    if file_kind == "text":
        yield from read_text_documents(path, max_document_bytes=max_document_bytes)
    elif file_kind == "jsonl":
        yield from read_jsonl_examples(path, max_document_bytes=max_document_bytes)
    else:
        yield from read_parquet_examples(path, max_document_bytes=max_document_bytes)


def _open_text(path: str | Path) -> IO[str]:
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _text_pieces(text: str, max_document_bytes: int) -> Iterator[str]:
    for piece in split_text(text, max_document_bytes):
        if piece.strip():
            yield piece


def read_text_documents(path: str | Path, *, max_document_bytes: int) -> Iterator[str]:
    """Stream the blank-line separated documents of a text file, split to the byte budget.

    A document never grows past twice the budget in memory: complete pieces are emitted as
    soon as they are known, and they are the same pieces as splitting the whole document.
    """
    lines: list[str] = []
    num_bytes = 0
    with _open_text(path) as handle:
        for line in handle:
            if not line.strip():
                if lines:
                    yield from _text_pieces("".join(lines).rstrip(), max_document_bytes)
                lines, num_bytes = [], 0
                continue
            lines.append(line)
            num_bytes += len(line.encode("utf-8"))
            if num_bytes > 2 * max_document_bytes:
                *complete, rest = split_text("".join(lines), max_document_bytes)
                yield from (piece for piece in complete if piece.strip())
                lines, num_bytes = [rest], len(rest.encode("utf-8"))
    if lines:
        yield from _text_pieces("".join(lines).rstrip(), max_document_bytes)


def _chat_from_messages(messages: Any, where: str) -> dict[str, Any] | None:
    if not isinstance(messages, list):
        raise ValueError(f"{where}: 'messages' must be a list of {{role, content}} objects")
    chat = []
    for message in messages:
        if not isinstance(message, Mapping) or not all(
            isinstance(message.get(key), str) for key in ("role", "content")
        ):
            raise ValueError(f"{where}: each message needs string 'role' and 'content'")
        chat.append({"role": message["role"], "content": message["content"]})
    if not any(message["content"].strip() for message in chat):
        return None
    return {"messages": chat}


def examples_from_record(
    record: Mapping[str, Any], where: str, *, max_document_bytes: int
) -> Iterator[Example]:
    """Turn one JSON object or table row into examples (text pieces or one chat).

    Args:
        record: A mapping with a `text` (str) or a `messages` (list) entry; None counts as empty.
        where: Location used in error messages, such as `"data.jsonl:12"`.
        max_document_bytes: Texts longer than this many UTF-8 bytes are split into pieces.

    Raises:
        ValueError: If the record has neither field or a field has the wrong type.
    """
    if "text" in record:
        text = record["text"]
        if text is None:
            return
        if not isinstance(text, str):
            raise ValueError(f"{where}: 'text' must be a string, got {type(text).__name__}")
        yield from _text_pieces(text, max_document_bytes)
    elif "messages" in record:
        if record["messages"] is None:
            return
        chat = _chat_from_messages(record["messages"], where)
        if chat is not None:
            yield chat
    else:
        raise ValueError(f"{where}: expected a 'text' or a 'messages' field")


def read_jsonl_examples(path: str | Path, *, max_document_bytes: int) -> Iterator[Example]:
    """Stream the examples of a JSONL file, one object per non-blank line."""
    with _open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not valid JSON ({error.msg})") from error
            if not isinstance(record, Mapping):
                raise ValueError(f"{where}: expected a JSON object")
            yield from examples_from_record(record, where, max_document_bytes=max_document_bytes)


def read_parquet_examples(path: str | Path, *, max_document_bytes: int) -> Iterator[Example]:
    """Stream the examples of a parquet file's `text` or `messages` column, in row batches.

    Raises:
        ImportError: If pyarrow is not installed.
        ValueError: If the file has neither column.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ImportError(
            f"reading {path} needs pyarrow: pip install 'ctd-distill[data]'"
        ) from error
    parquet_file = pq.ParquetFile(path)
    names = parquet_file.schema_arrow.names
    column = next((name for name in ("text", "messages") if name in names), None)
    if column is None:
        raise ValueError(f"{path}: expected a 'text' or a 'messages' column, found {names}")
    row = 0
    for batch in parquet_file.iter_batches(columns=[column], batch_size=_PARQUET_BATCH_ROWS):
        for value in batch.column(0).to_pylist():
            where = f"{path} row {row}"
            yield from examples_from_record(
                {column: value}, where, max_document_bytes=max_document_bytes
            )
            row += 1
