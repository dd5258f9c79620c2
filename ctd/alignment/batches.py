"""The padded batches the collators produce: K tokenizations of the same texts as torch tensors.

`MultiTokenizerBatch` holds K sides with common (K-way) chunk indices; `CrossTokenizerBatch` is
its teacher/student (K = 2) view. `padded_batch` builds one from K aligned tokenizations. The
only module of ctd.alignment that imports torch. Chunk membership is sparse: one chunk index per
token (B, T), never a dense (B, T, C) matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from ctd.alignment.chunk_alignment import BatchMultiAlignment
from ctd.alignment.ragged import TokenizedBatch

__all__ = ["CrossTokenizerBatch", "MultiTokenizerBatch", "pad_rows", "padded_batch"]


@dataclass
class CrossTokenizerBatch:
    """A right-padded teacher/student batch with chunk indices.

    Shapes: teacher_* (B, Tt); student_* (B, Ts); num_chunks (B,); chunk_num_bytes and
    *_chunk_last_token (B, Cmax).

    Attributes:
        teacher_input_ids: token ids, padded with the pad id.
        teacher_attention_mask: 1 on real tokens.
        teacher_loss_mask: tokens whose likelihood counts (text; for chat, assistant content).
        teacher_chunk_index: chunk of each token, -1 = padding or in no chunk.
        student_input_ids: as teacher_input_ids.
        student_attention_mask: as teacher_attention_mask.
        student_loss_mask: as teacher_loss_mask.
        student_chunk_index: as teacher_chunk_index.
        num_chunks: chunks per row.
        chunk_num_bytes: bytes per chunk, 0 for padding chunks (and zero-width special chunks).
        teacher_chunk_last_token: last teacher token of each chunk, -1 for padding chunks.
        student_chunk_last_token: last student token of each chunk, -1 for padding chunks.
    """

    teacher_input_ids: Tensor
    teacher_attention_mask: Tensor
    teacher_loss_mask: Tensor
    teacher_chunk_index: Tensor
    student_input_ids: Tensor
    student_attention_mask: Tensor
    student_loss_mask: Tensor
    student_chunk_index: Tensor
    num_chunks: Tensor
    chunk_num_bytes: Tensor
    teacher_chunk_last_token: Tensor
    student_chunk_last_token: Tensor

    def to(self, device: torch.device | str) -> CrossTokenizerBatch:
        """A copy with every tensor on `device`."""
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)}
        return CrossTokenizerBatch(**moved)


@dataclass
class MultiTokenizerBatch:
    """A right-padded batch of K tokenizations of the same texts with common chunk indices.

    Side k's tensors are at index k of each list. Chunks are K-way: each is tiled by every side.
    Shapes: input_ids[k], attention_mask[k], loss_mask[k], chunk_index[k] (B, T_k);
    num_chunks (B,); chunk_num_bytes, chunk_last_token[k] (B, Cmax).

    Attributes:
        input_ids: token ids, padded with each side's pad id.
        attention_mask: 1 on real tokens.
        loss_mask: tokens whose likelihood counts (text; for chat, `loss_roles` content).
        chunk_index: chunk of each token, -1 = padding or in no chunk.
        num_chunks: chunks per row (the same on every side).
        chunk_num_bytes: bytes per chunk, 0 for padding chunks (and zero-width special chunks).
        chunk_last_token: last token of each chunk on each side, -1 for padding chunks.
    """

    input_ids: list[Tensor]
    attention_mask: list[Tensor]
    loss_mask: list[Tensor]
    chunk_index: list[Tensor]
    num_chunks: Tensor
    chunk_num_bytes: Tensor
    chunk_last_token: list[Tensor]

    @property
    def num_sides(self) -> int:
        """K."""
        return len(self.input_ids)

    def to(self, device: torch.device | str) -> MultiTokenizerBatch:
        """A copy with every tensor on `device`."""
        return MultiTokenizerBatch(
            input_ids=[x.to(device) for x in self.input_ids],
            attention_mask=[x.to(device) for x in self.attention_mask],
            loss_mask=[x.to(device) for x in self.loss_mask],
            chunk_index=[x.to(device) for x in self.chunk_index],
            num_chunks=self.num_chunks.to(device),
            chunk_num_bytes=self.chunk_num_bytes.to(device),
            chunk_last_token=[x.to(device) for x in self.chunk_last_token],
        )

    def pair(self, teacher: int, student: int) -> CrossTokenizerBatch:
        """Sides `teacher` and `student` as a `CrossTokenizerBatch`, with the K-way chunks.

        The K-way chunks are chunks of every pair (each side tiles each of them), coarser than
        the pair's own alignment when K > 2.
        """
        return CrossTokenizerBatch(
            teacher_input_ids=self.input_ids[teacher],
            teacher_attention_mask=self.attention_mask[teacher],
            teacher_loss_mask=self.loss_mask[teacher],
            teacher_chunk_index=self.chunk_index[teacher],
            student_input_ids=self.input_ids[student],
            student_attention_mask=self.attention_mask[student],
            student_loss_mask=self.loss_mask[student],
            student_chunk_index=self.chunk_index[student],
            num_chunks=self.num_chunks,
            chunk_num_bytes=self.chunk_num_bytes,
            teacher_chunk_last_token=self.chunk_last_token[teacher],
            student_chunk_last_token=self.chunk_last_token[student],
        )


def _row_mask(row_starts: npt.NDArray[np.int64], width: int = 0) -> npt.NDArray[np.bool_]:
    """Real (not padding) cells of a right-padded (R, max(width, longest row)) matrix.

    Shapes: (R + 1,) -> (R, W).
    """
    lengths = np.diff(row_starts)
    num_cols = max(int(lengths.max(initial=0)), width)
    return np.arange(num_cols) < lengths[:, None]


def pad_rows(
    values: npt.NDArray[Any],
    row_starts: npt.NDArray[np.int64],
    fill: int | bool,
    width: int = 0,
    mask: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[Any]:
    """Scatter a flat ragged array into a right-padded (R, max(width, longest row)) matrix.

    One `np.full` and one boolean-mask assignment (row-major order is the flat order);
    `mask` (`_row_mask` of the same rows and width) saves recomputing it when several arrays
    share rows. Shapes: values (M,), row_starts (R + 1,) -> (R, W).
    """
    if mask is None:
        mask = _row_mask(row_starts, width)
    if len(values) == mask.size:  # no padding needed
        return values.reshape(mask.shape)
    out = np.full(mask.shape, fill, dtype=values.dtype)
    out[mask] = values
    return out


def padded_batch(
    sides: Sequence[TokenizedBatch],
    losses: Sequence[npt.NDArray[np.bool_]],
    alignment: BatchMultiAlignment,
    pad_ids: Sequence[int],
) -> MultiTokenizerBatch:
    """Pad every side's tokens, loss mask and chunk index, and the chunks, into tensors.

    Shapes: see `MultiTokenizerBatch`.
    """
    padded: dict[str, list[Tensor]] = {
        "input_ids": [],
        "attention_mask": [],
        "loss_mask": [],
        "chunk_index": [],
    }
    for side, loss, chunk_index, pad_id in zip(
        sides, losses, alignment.chunk_index, pad_ids, strict=True
    ):
        mask = _row_mask(side.row_starts)  # (B, T)
        for name, values in (
            ("input_ids", pad_rows(side.input_ids, side.row_starts, pad_id, 0, mask)),
            ("attention_mask", mask.astype(np.int64)),
            ("loss_mask", pad_rows(loss, side.row_starts, False, 0, mask)),
            ("chunk_index", pad_rows(chunk_index, side.row_starts, -1, 0, mask)),
        ):
            padded[name].append(torch.from_numpy(values))
    chunk_rows = alignment.chunk_row_starts
    chunk_mask = _row_mask(chunk_rows)  # (B, Cmax)
    num_bytes = alignment.chunk_byte_ends - alignment.chunk_byte_starts
    return MultiTokenizerBatch(
        **padded,
        num_chunks=torch.from_numpy(alignment.num_chunks),
        chunk_num_bytes=torch.from_numpy(pad_rows(num_bytes, chunk_rows, 0, 0, chunk_mask)),
        chunk_last_token=[
            torch.from_numpy(pad_rows(last, chunk_rows, -1, 0, chunk_mask))
            for last in alignment.chunk_last_token
        ],
    )
