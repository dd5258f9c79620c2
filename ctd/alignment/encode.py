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


_BLOB_WORDS: dict[int, tuple[TokenBytes, npt.NDArray[np.uint64]]] = {}
_LOW_BYTES_MASK = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype="<u8")  # (9,)


def _words(data: bytes | npt.NDArray[np.uint8], pad: int = 0) -> npt.NDArray[np.uint64]:
    """Every 8-byte little-endian window of `data`: word i = bytes i..i+7 (zero past the end).

    An unaligned stride-1 view over a zero-padded copy, so one fancy index gathers 8 bytes.
    Shapes: (N,) bytes -> (N + 1 + pad,) uint64.
    """
    padded = np.zeros(len(data) + pad + 9, dtype=np.uint8)
    padded[: len(data)] = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    return np.ndarray((len(data) + pad + 1,), dtype="<u8", buffer=padded.data, strides=(1,))


def _blob_words(table: TokenBytes) -> npt.NDArray[np.uint64]:
    """`_words(table.blob)`, built once per table."""
    cached = _BLOB_WORDS.get(id(table))
    if cached is None or cached[0] is not table:
        cached = (table, _words(table.blob))
        _BLOB_WORDS[id(table)] = cached
        while len(_BLOB_WORDS) > 8:
            _BLOB_WORDS.pop(next(iter(_BLOB_WORDS)))
    return cached[1]


def _spelled_rows(
    flat_ids: Int64Array,
    row_token_starts: Int64Array,
    cum: Int64Array,
    text_bytes: list[bytes],
    table: TokenBytes,
) -> tuple[npt.NDArray[np.bool_], Int64Array]:
    """Which rows the tokens spell exactly (after an optional dummy-prefix space), vectorised.

    Each token's bytes are compared with the text bytes at its position, 8 bytes per numpy
    operation (long tokens take more rounds); a row is also checked to have exactly the text's
    length (plus the prefix). The texts are joined with a space before each, which is what a
    dummy prefix spells. Also returns each row's prefix length (0 or 1).

    Shapes: flat_ids, cum (M,); row_token_starts (R + 1,) -> ok (R,), prefix_len (R,).
    """
    ends = np.concatenate([[0], cum])[row_token_starts]
    stream_row_len = ends[1:] - ends[:-1]
    text_len = np.fromiter(map(len, text_bytes), dtype=np.int64, count=len(text_bytes))
    if table.length_proves_exact and (table.unk_id < 0 or not np.any(flat_ids == table.unk_id)):
        # Equal length is proof of exact spelling here (see `_length_proves_exact`); a row of
        # another length is not spelled exactly (there is no dummy prefix) and takes the
        # normalizer-aware path, which maps it exactly or raises.
        return stream_row_len == text_len, np.zeros(len(text_len), dtype=np.int64)
    prefix = (stream_row_len - text_len == 1) & table.prepends_space
    length_ok = (stream_row_len == text_len) | prefix
    text_base = row_offsets(text_len + 1)[:-1] + 1 - prefix  # where each row's stream starts
    lengths = table.byte_lengths[flat_ids]
    positions = cum - lengths  # (M,) token starts in the joined texts
    positions += np.repeat(text_base - ends[:-1], np.diff(row_token_starts))
    joined = b" " + b" ".join(text_bytes)
    reach = int((text_base + stream_row_len).max(initial=0))  # rows too long read past the end
    text_words = _words(joined, max(reach - len(joined), 0))
    blob_words = _blob_words(table)
    vocab_starts = table.blob_starts[flat_ids]
    diff = text_words[positions] ^ blob_words[vocab_starts]
    bad = (diff & _LOW_BYTES_MASK[np.minimum(lengths, 8)]) != 0
    todo = np.flatnonzero(lengths > 8)
    offset = 8
    while len(todo):  # bytes 8k..8k+7 of every token longer than 8k
        diff = text_words[positions[todo] + offset] ^ blob_words[vocab_starts[todo] + offset]
        bad[todo[(diff & _LOW_BYTES_MASK[np.minimum(lengths[todo] - offset, 8)]) != 0]] = True
        offset += 8
        todo = todo[lengths[todo] > offset]
    bad_rows = np.searchsorted(row_token_starts, np.flatnonzero(bad), "right") - 1
    ok = length_ok.copy()
    ok[bad_rows] = False
    return ok, prefix.astype(np.int64)


def rust_encode_batch(rust: Tokenizer, texts: list[str]) -> list[list[int]]:
    """The tokenizer's own Rust `encode_batch` (no template, no padding): ids per text."""
    with _plain(rust):
        encodings = rust.encode_batch(texts, add_special_tokens=False)
    return [encoding.ids for encoding in encodings]


def _utf8(texts: list[str]) -> list[bytes]:
    encoded: list[bytes] = []
    for index, text in enumerate(texts):
        try:
            encoded.append(text.encode("utf-8"))
        except UnicodeEncodeError as error:
            raise ValueError(f"texts[{index}] is not valid Unicode ({error.reason})") from error
    return encoded


def _body_spans(
    rust: Tokenizer,
    table: TokenBytes,
    texts: list[str],
    text_bytes: list[bytes],
    failures: dict[int, str] | None = None,
) -> tuple[Int64Array, Int64Array, Int64Array, Int64Array]:
    """(flat ids, byte_starts, byte_ends, tokens per row) of the texts without template specials.

    With `failures`, a row that cannot be mapped exactly is recorded there (row -> reason) and
    keeps meaningless spans instead of raising; the caller must drop it.

    Shapes: (M,), (M,), (M,), (R,).
    """
    id_lists = rust_encode_batch(rust, texts)
    counts = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
    flat_ids = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=int(counts.sum()))
    row_token_starts = row_offsets(counts)
    lengths = table.byte_lengths[flat_ids]
    cum = np.cumsum(lengths)
    ok, prefix_len = _spelled_rows(flat_ids, row_token_starts, cum, text_bytes, table)
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
        try:
            byte_starts[start:stop], byte_ends[start:stop] = normalized_byte_spans(
                texts[row], flat_ids[start:stop], table, normalize, has_prepend
            )
        except ValueError as error:
            if failures is None:
                raise
            failures[int(row)] = str(error)
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
    return encode_batch_recording(tokenizer, texts, add_special_tokens=add_special_tokens)


def encode_batch_recording(
    tokenizer: object,
    texts: Sequence[str],
    *,
    add_special_tokens: bool = True,
    failures: dict[int, str] | None = None,
) -> TokenizedBatch:
    """`encode_batch`; with `failures`, unmappable rows are recorded there instead of raising.

    A recorded row (row index -> the ValueError's message) has meaningless spans: drop it
    (`TokenizedBatch.select`). Invalid Unicode still raises.
    """
    rust = as_rust_tokenizer(tokenizer)
    checked = _check_texts(texts)
    table = token_bytes(rust)
    text_bytes = _utf8(checked)
    body_ids, body_starts, body_ends, counts = _body_spans(
        rust, table, checked, text_bytes, failures
    )
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
    if not prefix_ids and not suffix_ids:
        is_special = table.is_special[body_ids]
        row_starts = row_offsets(counts)
        return TokenizedBatch(
            body_ids, body_starts, body_ends, is_special, row_starts, num_text_bytes
        )
    num_prefix, num_extra = len(prefix_ids), len(prefix_ids) + len(suffix_ids)
    row_starts = row_offsets(counts + num_extra)
    total = int(row_starts[-1])
    input_ids = np.empty(total, dtype=np.int64)
    byte_starts = np.empty(total, dtype=np.int64)
    byte_ends = np.empty(total, dtype=np.int64)
    is_body = np.ones(total, dtype=np.bool_)  # body tokens keep their order: a boolean-mask
    template_positions = []  # assignment (row-major) instead of a scatter index
    for offset, index in enumerate(prefix_ids):
        position = row_starts[:-1] + offset
        input_ids[position], byte_starts[position], byte_ends[position] = index, 0, 0
        template_positions.append(position)
    for offset, index in enumerate(suffix_ids):
        position = row_starts[:-1] + num_prefix + counts + offset
        input_ids[position] = index
        byte_starts[position] = byte_ends[position] = num_text_bytes
        template_positions.append(position)
    for position in template_positions:
        is_body[position] = False
    input_ids[is_body], byte_starts[is_body], byte_ends[is_body] = (
        body_ids,
        body_starts,
        body_ends,
    )
    is_special = ~is_body
    is_special[is_body] = table.is_special[body_ids]
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
