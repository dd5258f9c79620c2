"""Results of aligning two (or K) tokenizations: per-token chunk ids and chunk byte spans.

`MultiChunkAlignment` / `BatchMultiAlignment` hold K sides in a tuple, side k's arrays at
index k; `ChunkAlignment` / `BatchAlignment` are their K = 2 view with side 0 the teacher and
side 1 the student.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["BatchAlignment", "BatchMultiAlignment", "ChunkAlignment", "MultiChunkAlignment"]

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


@dataclass(frozen=True)
class MultiChunkAlignment:
    """Chunks of one text shared by K tokenizations (`align_many`).

    Each chunk has >= 1 contiguous token on every side, and every side covers exactly its
    bytes. Shapes: chunk_index[k] (T_k,); chunk_byte_*, chunk_last_token[k] (C,).

    Attributes:
        chunk_index: per side, the chunk of each token, -1 = in no chunk.
        chunk_byte_starts: first byte of each chunk (a special-token chunk is zero-width).
        chunk_byte_ends: one past its last byte.
        chunk_last_token: per side, the index of the last token of each chunk.
        num_chunks: C.
    """

    chunk_index: tuple[Int64Array, ...]
    chunk_byte_starts: Int64Array
    chunk_byte_ends: Int64Array
    chunk_last_token: tuple[Int64Array, ...]
    num_chunks: int

    @property
    def num_sides(self) -> int:
        """K."""
        return len(self.chunk_index)


@dataclass(frozen=True)
class BatchMultiAlignment:
    """`MultiChunkAlignment` of many rows in flat arrays (chunk and token indices are per row).

    Shapes: chunk_index[k] (M_k,); chunk_byte_*, chunk_last_token[k] (C_total,);
    chunk_row_starts, row_starts[k] (R + 1,).
    """

    chunk_index: tuple[Int64Array, ...]
    chunk_byte_starts: Int64Array
    chunk_byte_ends: Int64Array
    chunk_last_token: tuple[Int64Array, ...]
    chunk_row_starts: Int64Array
    row_starts: tuple[Int64Array, ...]

    @property
    def num_sides(self) -> int:
        """K."""
        return len(self.chunk_index)

    @property
    def num_chunks(self) -> Int64Array:
        """Chunks per row. Shapes: (R,)."""
        return np.diff(self.chunk_row_starts)

    def row(self, index: int) -> MultiChunkAlignment:
        """Row `index` as a `MultiChunkAlignment`."""
        chunks = slice(int(self.chunk_row_starts[index]), int(self.chunk_row_starts[index + 1]))
        tokens = [slice(int(rows[index]), int(rows[index + 1])) for rows in self.row_starts]
        return MultiChunkAlignment(
            chunk_index=tuple(
                side[part] for side, part in zip(self.chunk_index, tokens, strict=True)
            ),
            chunk_byte_starts=self.chunk_byte_starts[chunks],
            chunk_byte_ends=self.chunk_byte_ends[chunks],
            chunk_last_token=tuple(side[chunks] for side in self.chunk_last_token),
            num_chunks=chunks.stop - chunks.start,
        )

    def pair(self) -> BatchAlignment:
        """The K = 2 view: side 0 is the teacher, side 1 the student.

        Raises:
            ValueError: K is not 2.
        """
        if self.num_sides != 2:
            raise ValueError(
                f"a teacher/student view needs 2 sides, this alignment has {self.num_sides}"
            )
        return BatchAlignment(
            teacher_chunk_index=self.chunk_index[0],
            student_chunk_index=self.chunk_index[1],
            chunk_byte_starts=self.chunk_byte_starts,
            chunk_byte_ends=self.chunk_byte_ends,
            teacher_chunk_last_token=self.chunk_last_token[0],
            student_chunk_last_token=self.chunk_last_token[1],
            chunk_row_starts=self.chunk_row_starts,
            teacher_row_starts=self.row_starts[0],
            student_row_starts=self.row_starts[1],
        )
