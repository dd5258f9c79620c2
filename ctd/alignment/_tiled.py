"""O(M) alignment fast path: rows whose text tokens tile the bytes, specials only at row ends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ctd.alignment._assemble import merged_alignment, side_tokens
from ctd.alignment.bias import TokenizationBias
from ctd.alignment.chunk_alignment import BatchMultiAlignment
from ctd.alignment.modes import ChunkTable
from ctd.alignment.ragged import TokenizedBatch, row_offsets
from ctd.alignment.token_bytes import TokenBytes

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Layout:
    """Where a batch's zero-width specials stand when it is eligible for `tiled_alignment`.

    Shapes: special_index, special_rows, leading (S,); num_leading, num_trailing (R,).

    Attributes:
        special_index: flat index of each special token.
        special_rows: its row.
        leading: whether it stands at byte 0 (before every text token of its row; in a row
            with no text, every special is leading).
        num_leading: leading specials per row (they are the row's first tokens).
        num_trailing: trailing specials per row (at the row's end, its last tokens).
    """

    special_index: Int64Array
    special_rows: Int64Array
    leading: BoolArray
    num_leading: Int64Array
    num_trailing: Int64Array


def template_layout(batch: TokenizedBatch) -> Layout | None:
    """The layout of a batch of templated texts, or None if it is not one (checked in O(M)).

    Eligible: in every row, non-special tokens of positive width tile its bytes in order, and
    every special token is zero-width at byte 0 before them or at the end after them (BOS,
    EOS, plain text when there are none). Then every interval between consecutive common
    boundaries is tiled exactly by text tokens on every side and `tiled_alignment` applies.
    """
    starts, ends, row_starts = batch.byte_starts, batch.byte_ends, batch.row_starts
    num_rows = len(batch)
    is_text = ~batch.is_special
    # text tokens have positive width, specials zero width (a negative width fails too)
    if not np.array_equal(np.minimum(ends - starts, 1), is_text):
        return None
    nonempty = row_starts[1:] > row_starts[:-1]
    has_text = batch.num_text_bytes > 0
    if np.any(has_text & ~nonempty):
        return None  # a non-empty text without tokens
    previous_end = np.empty_like(ends)  # contiguous: each token starts where the last ended
    previous_end[1:] = ends[:-1]
    previous_end[row_starts[:-1][nonempty]] = 0
    last = row_starts[1:][nonempty] - 1
    if not (
        np.array_equal(starts, previous_end)
        and np.array_equal(ends[last], batch.num_text_bytes[nonempty])
    ):
        return None
    special_index = np.flatnonzero(batch.is_special)
    special_rows = np.searchsorted(row_starts, special_index, "right") - 1
    position = starts[special_index]
    leading = position == 0
    if not np.all(leading | (position == batch.num_text_bytes[special_rows])):
        return None  # a special inside the text
    num_leading = np.bincount(special_rows[leading], minlength=num_rows)
    num_trailing = np.bincount(special_rows[~leading], minlength=num_rows)
    return Layout(special_index, special_rows, leading, num_leading, num_trailing)


def _special_chunks(
    layout: Layout,
    row_starts: Int64Array,
    paired_leading: BoolArray,
    paired_trailing: BoolArray,
    closes: BoolArray,
) -> BoolArray:
    """Mark the last token of each paired special group in `closes`; which specials are unpaired.

    Shapes: paired_* (R,); closes (M,), modified; returns (S,).
    """
    leading_rows = np.flatnonzero(paired_leading)
    closes[row_starts[leading_rows] + layout.num_leading[leading_rows] - 1] = True
    closes[row_starts[np.flatnonzero(paired_trailing) + 1] - 1] = True
    rows = layout.special_rows
    return ~np.where(layout.leading, paired_leading[rows], paired_trailing[rows])


def _closing_tokens(batches: Sequence[TokenizedBatch]) -> tuple[list[Int64Array], list[BoolArray]]:
    """Each side's token ends on one gapless byte axis, and which of them every side has.

    Text tokens tile consecutive rows and specials have zero width, so a cumsum of widths puts
    every token end on one axis (row r's bytes follow row r - 1's). A special's end is 0 or a
    text token end of its side, so it marks nothing new. Shapes: per side (M_k,), (M_k,).
    """
    ends = [np.cumsum(batch.byte_ends - batch.byte_starts) for batch in batches]
    sides_ending = np.zeros(int(batches[0].num_text_bytes.sum()) + 1, np.int64)
    for side_ends in ends:
        # a repeated index is written once per assignment: each side counts once per position
        sides_ending[side_ends] += 1
    return ends, [sides_ending[side_ends] == len(batches) for side_ends in ends]


def tiled_alignment(
    batches: Sequence[TokenizedBatch],
    layouts: Sequence[Layout],
    pair_specials: bool,
    merge: tuple[str, TokenizationBias | None, Sequence[TokenBytes | None]],
) -> BatchMultiAlignment | None:
    """`align_many_batch` for templated texts (`template_layout`): O(M), no interval statistics.

    Each common boundary is then the end of exactly one text token on each side, so the chunk
    of a token is the number of chunk-closing tokens before it on its side (one cumsum): text
    tokens ending on a boundary every side has, and the last token of each group of specials
    that stands at the same row end on every side (with `pair_specials`; unpaired specials get
    -1). Returns None if the sides disagree on the chunks (then the general path decides).
    """
    ends, closes = _closing_tokens(batches)
    unpaired = [np.zeros(0, np.int64)] * len(batches)
    if any(len(layout.special_index) for layout in layouts):
        for side_closes, layout in zip(closes, layouts, strict=True):
            side_closes[layout.special_index] = False  # text ends only
        leading = np.all([layout.num_leading > 0 for layout in layouts], axis=0) & pair_specials
        trailing = np.all([layout.num_trailing > 0 for layout in layouts], axis=0) & pair_specials
        unpaired = [
            layout.special_index[
                _special_chunks(layout, batch.row_starts, leading, trailing, side_closes)
            ]
            for batch, layout, side_closes in zip(batches, layouts, closes, strict=True)
        ]
    last = [np.flatnonzero(side_closes) for side_closes in closes]
    for side in range(1, len(batches)):
        if len(last[side]) != len(last[0]) or not (
            np.array_equal(ends[side][last[side]], ends[0][last[0]])
            and np.array_equal(batches[side].is_special[last[side]], batches[0].is_special[last[0]])
        ):
            return None
    cumulative = [row_offsets(side_closes.astype(np.int64)) for side_closes in closes]
    chunk_row_starts = cumulative[0][batches[0].row_starts]
    chunk_index = []
    for side_cumulative, side_unpaired in zip(cumulative, unpaired, strict=True):
        side_chunk = side_cumulative[:-1]  # a view: the cumsum is not read after this
        side_chunk[side_unpaired] = -1
        chunk_index.append(side_chunk)
    num_chunks = np.diff(chunk_row_starts)
    rows = np.repeat(np.arange(len(batches[0]), dtype=np.int64), num_chunks)
    byte_ends = batches[0].byte_ends[last[0]]  # row-local
    byte_starts = np.empty_like(byte_ends)  # a chunk starts where the row's previous one ends
    byte_starts[:1] = 0
    byte_starts[1:] = byte_ends[:-1]
    byte_starts[chunk_row_starts[:-1][num_chunks > 0]] = 0
    mode, bias, tables = merge
    special = batches[0].is_special[last[0]]
    return merged_alignment(
        ChunkTable(byte_starts, byte_ends, rows, special, tuple(last)),
        chunk_index,
        None,
        [side_tokens(batch, table) for batch, table in zip(batches, tables, strict=True)],
        mode,
        bias,
    )
