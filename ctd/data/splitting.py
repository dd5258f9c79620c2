"""Split long texts into pieces of at most `max_document_bytes` UTF-8 bytes.

Pieces end on the best boundary inside the byte budget: a blank line, else a line break,
else whitespace, else the last whole character. Concatenating the pieces gives the text back.
"""

from __future__ import annotations

from collections.abc import Iterator

MIN_DOCUMENT_BYTES = 4  # one UTF-8 character always fits, so every piece makes progress
_SEPARATORS: tuple[tuple[bytes, ...], ...] = ((b"\n\n",), (b"\n",), (b" ", b"\t", b"\r"))


def _is_continuation_byte(byte: int) -> bool:
    return byte & 0xC0 == 0x80


def _cut_position(window: bytes, max_document_bytes: int) -> int:
    """Byte length of the next piece; `window` holds one byte past the budget."""
    head = window[:max_document_bytes]
    min_cut_bytes = max_document_bytes // 2  # prefer a weaker boundary over a tiny piece
    for separators in _SEPARATORS:
        found = max(head.rfind(separator) + len(separator) for separator in separators)
        if found > min_cut_bytes:
            return found
    cut = max_document_bytes
    while _is_continuation_byte(window[cut]):  # never cut inside a character
        cut -= 1
    return cut


def iter_text_pieces(text: str, max_document_bytes: int) -> Iterator[str]:
    """Yield consecutive pieces of `text`, each at most `max_document_bytes` bytes of UTF-8.

    Args:
        text: The text to split.
        max_document_bytes: Upper bound on the UTF-8 size of each piece (at least 4).

    Yields:
        Non-empty pieces whose concatenation is `text`.

    Raises:
        ValueError: If `max_document_bytes` is below 4.
    """
    if max_document_bytes < MIN_DOCUMENT_BYTES:
        raise ValueError(f"max_document_bytes must be >= {MIN_DOCUMENT_BYTES}")
    data = text.encode("utf-8")
    start = 0
    while len(data) - start > max_document_bytes:
        cut = _cut_position(data[start : start + max_document_bytes + 1], max_document_bytes)
        yield data[start : start + cut].decode("utf-8")
        start += cut
    if start < len(data):
        yield data[start:].decode("utf-8")


def split_text(text: str, max_document_bytes: int) -> list[str]:
    r"""Split `text` into pieces of at most `max_document_bytes` UTF-8 bytes.

    Args:
        text: The text to split.
        max_document_bytes: Upper bound on the UTF-8 size of each piece (at least 4).

    Returns:
        The pieces, in order; `"".join(pieces) == text`.

    Examples:
        >>> split_text("one two\n\nthree four", 12)
        ['one two\n\n', 'three four']
    """
    return list(iter_text_pieces(text, max_document_bytes))
