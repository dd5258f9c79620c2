"""Batched encoding with exact per-token byte spans into the original text's UTF-8 bytes.

Spans come from token byte lengths (`token_bytes`), cumulative-summed, never from character
offsets. Every batch is verified in one vectorised pass: the tokens' bytes must spell the text
(after at most one dummy-prefix space). Texts that fail take the normalizer-aware path of
`_normalized_spans`, which maps spans back exactly or raises a ValueError naming the normalizer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from ctd.alignment._backend import as_rust_tokenizer
from ctd.alignment._normalized_spans import normalized_byte_spans
from ctd.alignment.ragged import TokenizedBatch, TokenizedText, row_offsets
from ctd.alignment.token_bytes import TokenBytes, token_bytes

__all__ = ["TokenizedBatch", "TokenizedText", "encode", "encode_batch", "template_special_ids"]

Int64Array = npt.NDArray[np.int64]


def _check_texts(texts: object) -> list[str]:
    if texts is None:
        raise TypeError("texts is None; pass a sequence of str")
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a sequence of str, not a single str/bytes; wrap it: [text]")
    if not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a sequence of str, got {type(texts).__name__}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, expected str")
    return list(texts)


@contextmanager
def _plain(rust: Tokenizer) -> Iterator[Tokenizer]:
    """Temporarily switch off padding and truncation configured on the Rust tokenizer."""
    padding, truncation = rust.padding, rust.truncation
    if padding is not None:
        rust.no_padding()
    if truncation is not None:
        rust.no_truncation()
    try:
        yield rust
    finally:
        if padding is not None:
            rust.enable_padding(**padding)
        if truncation is not None:
            rust.enable_truncation(**truncation)


def template_special_ids(tokenizer: object) -> tuple[list[int], list[int]]:
    """The ids the post-processor puts before and after a single text (e.g. BOS, EOS).

    Raises:
        ValueError: if the post-processor does more than add a fixed prefix and suffix.
    """
    rust = as_rust_tokenizer(tokenizer)
    with _plain(rust):
        full = rust.encode("a", add_special_tokens=True).ids
        bare = rust.encode("a", add_special_tokens=False).ids
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ValueError("the tokenizer's post-processor is not a fixed prefix/suffix template")


def _fast_rows(
    flat_ids: Int64Array,
    row_token_starts: Int64Array,
    text_bytes: list[bytes],
    table: TokenBytes,
) -> tuple[npt.NDArray[np.bool_], Int64Array]:
    """Which rows the tokens spell exactly (after an optional dummy-prefix space).

    Also returns each row's prefix length (0 or 1).

    Shapes: flat_ids (M,); row_token_starts (R + 1,) -> ok (R,), prefix_len (R,).
    """
    lengths = table.byte_lengths[flat_ids]
    cum = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    stream_row_len = cum[row_token_starts[1:]] - cum[row_token_starts[:-1]]
    text_len = np.fromiter((len(b) for b in text_bytes), dtype=np.int64, count=len(text_bytes))
    prefix_len = stream_row_len - text_len
    gather = np.repeat(table.blob_starts[flat_ids] - cum[:-1], lengths) + np.arange(cum[-1])
    stream = table.blob[gather]
    row_first_byte = cum[row_token_starts[:-1]]
    has_prefix = (prefix_len == 1) & table.prepends_space
    if len(stream):
        has_prefix &= stream[np.minimum(row_first_byte, len(stream) - 1)] == ord(" ")
    candidate = (prefix_len == 0) | has_prefix
    keep = np.repeat(candidate, stream_row_len)
    keep[row_first_byte[has_prefix]] = False
    expected = np.frombuffer(
        b"".join(b for b, ok in zip(text_bytes, candidate, strict=True) if ok), dtype=np.uint8
    )
    mismatch = np.flatnonzero(stream[keep] != expected)
    ok = candidate.copy()
    if len(mismatch):
        candidate_rows = np.flatnonzero(candidate)
        candidate_ends = np.cumsum(text_len[candidate_rows])
        ok[candidate_rows[np.searchsorted(candidate_ends, mismatch, "right")]] = False
    return ok, np.where(has_prefix, 1, 0).astype(np.int64)


def rust_encode_batch(rust: Tokenizer, texts: list[str]) -> list[list[int]]:
    """The tokenizer's own Rust `encode_batch` (no template, no padding): ids per text."""
    with _plain(rust):
        encodings = rust.encode_batch(texts, add_special_tokens=False)
    return [encoding.ids for encoding in encodings]


def _spelled_rows(
    id_lists: list[list[int]],
    flat_ids: Int64Array,
    row_token_starts: Int64Array,
    cum: Int64Array,
    text_bytes: list[bytes],
    table: TokenBytes,
) -> tuple[npt.NDArray[np.bool_], Int64Array]:
    """`_fast_rows`, with a one-comparison shortcut when the whole batch is spelled exactly.

    Shapes: flat_ids, cum (M,); row_token_starts (R + 1,) -> ok (R,), prefix_len (R,).
    """
    ends = np.concatenate([[0], cum])[row_token_starts]
    stream_row_len = ends[1:] - ends[:-1]
    text_len = np.fromiter(map(len, text_bytes), dtype=np.int64, count=len(text_bytes))
    prefix = (stream_row_len - text_len == 1) & table.prepends_space
    if np.all((stream_row_len == text_len) | prefix):
        stream = b"".join(map(table.bytes_of.__getitem__, chain.from_iterable(id_lists)))
        pieces = [b" " + data if p else data for data, p in zip(text_bytes, prefix, strict=True)]
        if stream == b"".join(pieces):
            return np.ones(len(text_bytes), dtype=np.bool_), prefix.astype(np.int64)
    return _fast_rows(flat_ids, row_token_starts, text_bytes, table)


def _utf8(texts: list[str]) -> list[bytes]:
    encoded: list[bytes] = []
    for index, text in enumerate(texts):
        try:
            encoded.append(text.encode("utf-8"))
        except UnicodeEncodeError as error:
            raise ValueError(f"texts[{index}] is not valid Unicode ({error.reason})") from error
    return encoded


def _body_spans(
    rust: Tokenizer, table: TokenBytes, texts: list[str], text_bytes: list[bytes]
) -> tuple[Int64Array, Int64Array, Int64Array, Int64Array]:
    """(flat ids, byte_starts, byte_ends, tokens per row) of the texts without template specials.

    Shapes: (M,), (M,), (M,), (R,).
    """
    id_lists = rust_encode_batch(rust, texts)
    counts = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
    flat_ids = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=int(counts.sum()))
    row_token_starts = row_offsets(counts)
    lengths = table.byte_lengths[flat_ids]
    cum = np.cumsum(lengths)
    ok, prefix_len = _spelled_rows(id_lists, flat_ids, row_token_starts, cum, text_bytes, table)
    row_base = np.concatenate([[0], cum])[row_token_starts[:-1]] + prefix_len
    byte_ends = cum - np.repeat(row_base, counts)
    byte_starts = byte_ends - lengths
    if prefix_len.any():
        np.maximum(byte_ends, 0, out=byte_ends)
        np.maximum(byte_starts, 0, out=byte_starts)
    normalizer = rust.normalizer
    normalize = normalizer.normalize_str if normalizer is not None else (lambda text: text)
    has_prepend = bool(table.metaspace) and normalize("x").startswith(str(table.metaspace))
    for row in np.flatnonzero(~ok):
        start, stop = row_token_starts[row], row_token_starts[row + 1]
        byte_starts[start:stop], byte_ends[start:stop] = normalized_byte_spans(
            texts[row], flat_ids[start:stop], table, normalize, has_prepend
        )
    return flat_ids, byte_starts, byte_ends, counts


def encode_batch(
    tokenizer: object, texts: Sequence[str], *, add_special_tokens: bool = True
) -> TokenizedBatch:
    """Tokenize `texts` in one Rust `encode_batch` call, with exact byte spans (flat batch).

    Args:
        tokenizer: a fast tokenizer or `tokenizers.Tokenizer`.
        texts: the texts.
        add_special_tokens: add the post-processor's template tokens (BOS/EOS); they are
            zero-width, at byte 0 (before the text) or at the text's end (after it).

    Raises:
        TypeError: a slow tokenizer, None, or texts that are not a sequence of str.
        ValueError: a text whose tokens cannot be mapped back to exact bytes (names the
            normalizer), or invalid Unicode.
    """
    rust = as_rust_tokenizer(tokenizer)
    checked = _check_texts(texts)
    table = token_bytes(rust)
    text_bytes = _utf8(checked)
    body_ids, body_starts, body_ends, counts = _body_spans(rust, table, checked, text_bytes)
    prefix_ids, suffix_ids = template_special_ids(rust) if add_special_tokens else ([], [])
    num_text_bytes = np.fromiter(map(len, text_bytes), dtype=np.int64, count=len(text_bytes))
    return _with_template(
        body_ids, body_starts, body_ends, counts, num_text_bytes, table, prefix_ids, suffix_ids
    )


def _with_template(
    body_ids: Int64Array,
    body_starts: Int64Array,
    body_ends: Int64Array,
    counts: Int64Array,
    num_text_bytes: Int64Array,
    table: TokenBytes,
    prefix_ids: list[int],
    suffix_ids: list[int],
) -> TokenizedBatch:
    """Insert zero-width template specials before and after each row.

    Shapes: body_* (M,), counts and num_text_bytes (R,) -> a batch of M + R * (P + S) tokens.
    """
    num_prefix, num_extra = len(prefix_ids), len(prefix_ids) + len(suffix_ids)
    rows = np.arange(len(counts), dtype=np.int64)
    row_starts = row_offsets(counts + num_extra)
    total = int(row_starts[-1])
    input_ids = np.zeros(total, dtype=np.int64)
    byte_starts = np.zeros(total, dtype=np.int64)
    byte_ends = np.zeros(total, dtype=np.int64)
    is_special = np.ones(total, dtype=np.bool_)
    body_pos = np.arange(len(body_ids)) + np.repeat(rows * num_extra + num_prefix, counts)
    input_ids[body_pos], byte_starts[body_pos], byte_ends[body_pos] = (
        body_ids,
        body_starts,
        body_ends,
    )
    is_special[body_pos] = table.is_special[body_ids]
    for offset, index in enumerate(prefix_ids):
        input_ids[row_starts[:-1] + offset] = index
    for offset, index in enumerate(suffix_ids):
        position = row_starts[:-1] + num_prefix + counts + offset
        input_ids[position] = index
        byte_starts[position] = byte_ends[position] = num_text_bytes
    return TokenizedBatch(input_ids, byte_starts, byte_ends, is_special, row_starts, num_text_bytes)


def encode(
    tokenizer: object, texts: Sequence[str], *, add_special_tokens: bool = True
) -> list[TokenizedText]:
    """Tokenize `texts` (batched) into `TokenizedText` with exact byte spans.

    Args:
        tokenizer: a fast tokenizer or `tokenizers.Tokenizer`.
        texts: the texts.
        add_special_tokens: add the post-processor's zero-width template tokens (BOS/EOS).

    Returns:
        One `TokenizedText` per text.

    Raises:
        TypeError: a slow tokenizer, None, or texts that are not a sequence of str.
        ValueError: tokens that cannot be mapped back to exact bytes (names the normalizer).
    """
    return encode_batch(tokenizer, texts, add_special_tokens=add_special_tokens).rows()
