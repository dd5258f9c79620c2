"""Tokenized texts: one text (`TokenizedText`) and a flat batch of them (`TokenizedBatch`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

__all__ = ["TokenizedBatch", "TokenizedText", "row_offsets"]

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def row_offsets(counts: Int64Array) -> Int64Array:
    """Exclusive cumulative sum with a trailing total. Shapes: (R,) -> (R + 1,)."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


@dataclass(frozen=True)
class TokenizedText:
    """One text's tokens with exact byte spans into `text.encode("utf-8")`.

    Shapes: every array is (T,).

    Attributes:
        input_ids: token ids (int64).
        byte_starts: first byte of each token in the text.
        byte_ends: one past its last byte; a special token that is not in the text (BOS, EOS,
            a chat-template token) is zero-width at the position where it stands.
        is_special: special tokens (template or special added tokens).
        num_text_bytes: length of the text in UTF-8 bytes.
    """

    input_ids: Int64Array
    byte_starts: Int64Array
    byte_ends: Int64Array
    is_special: BoolArray
    num_text_bytes: int

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class TokenizedBatch:
    """Many `TokenizedText` in flat arrays; row r is tokens `row_starts[r]:row_starts[r + 1]`.

    Shapes: input_ids, byte_starts, byte_ends, is_special (M,); row_starts (R + 1,);
    num_text_bytes (R,).
    """

    input_ids: Int64Array
    byte_starts: Int64Array
    byte_ends: Int64Array
    is_special: BoolArray
    row_starts: Int64Array
    num_text_bytes: Int64Array

    def __len__(self) -> int:
        return len(self.num_text_bytes)

    @property
    def row_lengths(self) -> Int64Array:
        """Tokens per row. Shapes: (R,)."""
        return np.diff(self.row_starts)

    @cached_property
    def token_rows(self) -> Int64Array:
        """Row of every token (computed once per batch). Shapes: (M,)."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.row_lengths)

    def row(self, index: int) -> TokenizedText:
        """Row `index` as a `TokenizedText` (views, no copy)."""
        start, stop = int(self.row_starts[index]), int(self.row_starts[index + 1])
        return TokenizedText(
            input_ids=self.input_ids[start:stop],
            byte_starts=self.byte_starts[start:stop],
            byte_ends=self.byte_ends[start:stop],
            is_special=self.is_special[start:stop],
            num_text_bytes=int(self.num_text_bytes[index]),
        )

    def rows(self) -> list[TokenizedText]:
        """All rows."""
        return [self.row(index) for index in range(len(self))]

    @classmethod
    def from_rows(cls, rows: Sequence[TokenizedText]) -> TokenizedBatch:
        """Concatenate `TokenizedText` rows into one batch."""
        counts = np.array([len(row) for row in rows], dtype=np.int64)

        def cat(name: str, dtype: type) -> npt.NDArray[np.generic]:
            parts = [getattr(row, name) for row in rows]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        return cls(
            input_ids=cat("input_ids", np.int64).astype(np.int64),
            byte_starts=cat("byte_starts", np.int64).astype(np.int64),
            byte_ends=cat("byte_ends", np.int64).astype(np.int64),
            is_special=cat("is_special", np.bool_).astype(np.bool_),
            row_starts=row_offsets(counts),
            num_text_bytes=np.array([row.num_text_bytes for row in rows], dtype=np.int64),
        )

    def select(self, keep_rows: BoolArray) -> TokenizedBatch:
        """The rows where `keep_rows` is True. Shapes: keep_rows (R,)."""
        keep = np.repeat(keep_rows, self.row_lengths)
        return TokenizedBatch(
            input_ids=self.input_ids[keep],
            byte_starts=self.byte_starts[keep],
            byte_ends=self.byte_ends[keep],
            is_special=self.is_special[keep],
            row_starts=row_offsets(self.row_lengths[keep_rows]),
            num_text_bytes=self.num_text_bytes[keep_rows],
        )

    def truncate(self, max_length: int) -> TokenizedBatch:
        """Keep the first `max_length` tokens of each row."""
        if max_length < 0:
            raise ValueError(f"max_length must be >= 0, got {max_length}")
        if not np.any(self.row_lengths > max_length):
            return self
        keep = (np.arange(len(self.input_ids)) - self.row_starts[self.token_rows]) < max_length
        return TokenizedBatch(
            input_ids=self.input_ids[keep],
            byte_starts=self.byte_starts[keep],
            byte_ends=self.byte_ends[keep],
            is_special=self.is_special[keep],
            row_starts=row_offsets(np.minimum(self.row_lengths, max_length)),
            num_text_bytes=self.num_text_bytes,
        )
