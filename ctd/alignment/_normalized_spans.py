"""Exact byte spans for texts that a tokenizer's pipeline changes (the slow, per-text path).

The text is cut into segments before every character of canonical combining class 0; each
segment's *image* is what the tokenizer's tokens spell for it (normalized, metaspace turned
back into a space, whitespace removed where the pre-tokenizer drops it). When the images
concatenate to the tokens' bytes (after an optional dummy-prefix space), every token boundary
that falls on a segment edge, or inside a segment the pipeline left unchanged, maps to one
exact original byte position. Anything else raises a ValueError naming the normalizer.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from ctd.alignment.token_bytes import TokenBytes

__all__ = ["normalized_byte_spans"]

Int64Array = npt.NDArray[np.int64]


def _segments(text: str) -> list[str]:
    """Split before each character of canonical combining class 0."""
    segments: list[str] = []
    for char in text:
        if segments and unicodedata.combining(char):
            segments[-1] += char
        else:
            segments.append(char)
    return segments


def _image(
    segment: str, token_table: TokenBytes, normalize: Callable[[str], str], has_prepend: bool
) -> bytes:
    """The bytes the tokens spell for one segment of the original text."""
    normalized = normalize(segment)
    if has_prepend and token_table.metaspace and normalized.startswith(token_table.metaspace):
        normalized = normalized[len(token_table.metaspace) :]
    if token_table.metaspace:
        normalized = normalized.replace(token_table.metaspace, " ")
    if token_table.drops_whitespace:
        normalized = "".join(char for char in normalized if not char.isspace())
    return normalized.encode("utf-8")


def _describe(token_table: TokenBytes) -> str:
    parts = [f"normalizer {token_table.normalizer}" if token_table.normalizer else ""]
    parts.append("a pre-tokenizer that drops whitespace" if token_table.drops_whitespace else "")
    parts.append("a dummy-prefix space" if token_table.prepends_space else "")
    return " and ".join(part for part in parts if part) or (
        "tokens that do not spell the text (an unknown token, or bytes without a token that "
        "the tokenizer drops)"
    )


def normalized_byte_spans(
    text: str,
    input_ids: Int64Array,
    token_table: TokenBytes,
    normalize: Callable[[str], str],
    has_prepend: bool,
) -> tuple[Int64Array, Int64Array]:
    """Byte spans of `input_ids` (no template specials) in `text.encode("utf-8")`.

    Special added tokens found in the text split it into pieces that the pipeline normalizes
    separately (each may get its own dummy-prefix space); each piece is mapped on its own.

    Shapes: input_ids (T,) -> byte_starts (T,), byte_ends (T,).

    Raises:
        ValueError: the tokens cannot be mapped back to exact original bytes; the message names
            the normalizer or pre-tokenizer responsible.
    """
    byte_starts = np.zeros(len(input_ids), dtype=np.int64)
    byte_ends = np.zeros(len(input_ids), dtype=np.int64)
    char_pos, byte_pos, token_pos = 0, 0, 0
    specials = [int(i) for i in np.flatnonzero(token_table.is_special[input_ids])]
    for special in [*specials, len(input_ids)]:
        if special < len(input_ids):
            content = token_table.bytes_of[int(input_ids[special])].decode("utf-8", "replace")
            found = text.find(content, char_pos)
            if found < 0:
                raise _absent_token(token_table.bytes_of[int(input_ids[special])], text)
        else:
            content, found = "", len(text)
        piece = text[char_pos:found]
        starts, ends = _piece_spans(
            piece, input_ids[token_pos:special], token_table, normalize, has_prepend
        )
        byte_starts[token_pos:special], byte_ends[token_pos:special] = (
            starts + byte_pos,
            ends + byte_pos,
        )
        byte_pos += len(piece.encode("utf-8"))
        if special < len(input_ids):
            byte_starts[special] = byte_pos
            byte_pos += len(content.encode("utf-8"))
            byte_ends[special] = byte_pos
        char_pos, token_pos = found + len(content), special + 1
    return byte_starts, byte_ends


def _absent_token(token: bytes, text: str) -> ValueError:
    content = token.decode("utf-8", "replace")
    return ValueError(
        f"token {content!r} (special or unknown) does not occur in the text "
        f"{text[:40]!r}: no exact byte span exists"
    )


def _piece_spans(
    text: str,
    input_ids: Int64Array,
    token_table: TokenBytes,
    normalize: Callable[[str], str],
    has_prepend: bool,
) -> tuple[Int64Array, Int64Array]:
    """Byte spans of `input_ids` (no specials) in one piece of text. Shapes: (T,) -> 2 x (T,)."""
    if token_table.unk_id >= 0 and bool(np.any(input_ids == token_table.unk_id)):
        raise _absent_token(token_table.bytes_of[token_table.unk_id], text)
    stream = b"".join(token_table.bytes_of[int(index)] for index in input_ids)
    segments = _segments(text)
    originals = [segment.encode("utf-8") for segment in segments]
    images = [_image(segment, token_table, normalize, has_prepend) for segment in segments]
    image = b"".join(images)
    prefix_len = len(stream) - len(image)
    if (
        prefix_len not in (0, 1)
        or stream[prefix_len:] != image
        or stream[:prefix_len]
        not in (
            b"",
            b" ",
        )
    ):
        raise ValueError(
            f"cannot map tokens back to the text {text[:40]!r}: {_describe(token_table)} "
            "changes it in a way ctd.alignment cannot invert"
        )
    image_bounds = np.cumsum([0] + [len(part) for part in images], dtype=np.int64)
    original_bounds = np.cumsum([0] + [len(part) for part in originals], dtype=np.int64)
    unchanged = np.array([a == b for a, b in zip(images, originals, strict=True)], dtype=np.bool_)
    lengths = token_table.byte_lengths[input_ids]
    image_ends = np.maximum(np.cumsum(lengths) - prefix_len, 0)
    byte_ends = _map_positions(image_ends, image_bounds, original_bounds, unchanged)
    if byte_ends is None:
        raise ValueError(
            f"a token boundary falls inside a character sequence that {_describe(token_table)} "
            f"changed, in the text {text[:40]!r}: no exact byte span exists"
        )
    if len(byte_ends) and image_ends[-1] == image_bounds[-1]:
        byte_ends[-1] = original_bounds[-1]  # trailing dropped whitespace joins the last token
    byte_starts = np.concatenate([[0], byte_ends[:-1]]).astype(np.int64)
    if np.any(byte_ends < byte_starts):
        raise ValueError(f"{_describe(token_table)} reorders the text {text[:40]!r}")
    return byte_starts, byte_ends


def _map_positions(
    image_positions: Int64Array,
    image_bounds: Int64Array,
    original_bounds: Int64Array,
    unchanged: npt.NDArray[np.bool_],
) -> Int64Array | None:
    """Map token boundaries from image to original bytes; None if one is not exact.

    Shapes: image_positions (T,); image_bounds, original_bounds (S + 1,); unchanged (S,).
    """
    index = np.searchsorted(image_bounds, image_positions, "left")
    index = np.minimum(index, len(image_bounds) - 1)
    on_edge = image_bounds[index] == image_positions
    segment = np.maximum(index - 1, 0)
    inside_ok = unchanged[np.minimum(segment, len(unchanged) - 1)] if len(unchanged) else on_edge
    if not np.all(on_edge | inside_ok):
        return None
    inside = original_bounds[segment] + (image_positions - image_bounds[segment])
    return np.where(on_edge, original_bounds[index], inside).astype(np.int64)
