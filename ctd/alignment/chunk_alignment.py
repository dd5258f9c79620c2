"""Results of aligning two tokenizations: per-token chunk ids and chunk byte spans."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["BatchAlignment", "ChunkAlignment"]

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ChunkAlignment:
    """Chunks of one text pair.

    Chunk ids increase with byte position; each chunk has >= 1 token on each side, contiguous,
    and both sides cover exactly its bytes.

    Shapes: teacher_chunk_index (Tt,), student_chunk_index (Ts,), every chunk_* and *_last_token
    array (C,).

    Attributes:
        teacher_chunk_index: chunk of each teacher token, -1 = in no chunk.
        student_chunk_index: chunk of each student token, -1 = in no chunk.
        chunk_byte_starts: first byte of each chunk (a special-token chunk is zero-width).
        chunk_byte_ends: one past its last byte.
        teacher_chunk_last_token: index of the last teacher token of each chunk.
        student_chunk_last_token: index of the last student token of each chunk.
        num_chunks: C.
    """

    teacher_chunk_index: Int64Array
    student_chunk_index: Int64Array
    chunk_byte_starts: Int64Array
    chunk_byte_ends: Int64Array
    teacher_chunk_last_token: Int64Array
    student_chunk_last_token: Int64Array
    num_chunks: int


@dataclass(frozen=True)
class BatchAlignment:
    """`ChunkAlignment` of many rows in flat arrays (chunk and token indices are per row).

    Shapes: teacher_chunk_index (Mt,), student_chunk_index (Ms,), chunk arrays (C_total,),
    chunk_row_starts (R + 1,).
    """

    teacher_chunk_index: Int64Array
    student_chunk_index: Int64Array
    chunk_byte_starts: Int64Array
    chunk_byte_ends: Int64Array
    teacher_chunk_last_token: Int64Array
    student_chunk_last_token: Int64Array
    chunk_row_starts: Int64Array
    teacher_row_starts: Int64Array
    student_row_starts: Int64Array

    @property
    def num_chunks(self) -> Int64Array:
        """Chunks per row. Shapes: (R,)."""
        return np.diff(self.chunk_row_starts)

    def row(self, index: int) -> ChunkAlignment:
        """Row `index` as a `ChunkAlignment`."""
        chunks = slice(int(self.chunk_row_starts[index]), int(self.chunk_row_starts[index + 1]))
        teacher = slice(
            int(self.teacher_row_starts[index]), int(self.teacher_row_starts[index + 1])
        )
        student = slice(
            int(self.student_row_starts[index]), int(self.student_row_starts[index + 1])
        )
        return ChunkAlignment(
            teacher_chunk_index=self.teacher_chunk_index[teacher],
            student_chunk_index=self.student_chunk_index[student],
            chunk_byte_starts=self.chunk_byte_starts[chunks],
            chunk_byte_ends=self.chunk_byte_ends[chunks],
            teacher_chunk_last_token=self.teacher_chunk_last_token[chunks],
            student_chunk_last_token=self.student_chunk_last_token[chunks],
            num_chunks=chunks.stop - chunks.start,
        )
