"""O(M) alignment fast path: rows whose text tokens tile the bytes, specials only at row ends."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ctd.alignment._assemble import merged_alignment, side_tokens
from ctd.alignment.bias import TokenizationBias
from ctd.alignment.chunk_alignment import BatchAlignment
from ctd.alignment.modes import ChunkTable
from ctd.alignment.ragged import TokenizedBatch
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
    boundaries is tiled exactly by text tokens on both sides and `tiled_alignment` applies.
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


def tiled_alignment(
    teacher: TokenizedBatch,
    student: TokenizedBatch,
    layouts: tuple[Layout, Layout],
    pair_specials: bool,
    merge: tuple[str, TokenizationBias | None, TokenBytes | None, TokenBytes | None],
) -> BatchAlignment | None:
    """`align_batch` for templated texts (`template_layout`): O(M), no interval statistics.

    Each common boundary is then the end of exactly one text token on each side, so the chunk
    of a token is the number of chunk-closing tokens before it on its side (one cumsum): text
    tokens ending on a common boundary, and the last token of each group of specials that
    stands at the same row end on both sides (with `pair_specials`; unpaired specials get -1).
    Returns None if the two sides disagree on the chunks (then the general path decides).
    """
    # Text tokens tile consecutive rows and specials have zero width, so a cumsum of widths
    # puts every token end on one gapless byte axis (row r's bytes follow row r - 1's). A
    # special's end is 0 or a text token end of its side, so it marks nothing new.
    t_ends = np.cumsum(teacher.byte_ends - teacher.byte_starts)
    s_ends = np.cumsum(student.byte_ends - student.byte_starts)
    marks = np.zeros(int(teacher.num_text_bytes.sum()) + 1, np.bool_)
    marks[s_ends] = True
    t_closes = marks[t_ends]
    marks[s_ends] = False
    marks[t_ends] = True
    s_closes = marks[s_ends]
    t_layout, s_layout = layouts
    t_unpaired = s_unpaired = np.zeros(0, np.int64)
    if len(t_layout.special_index) or len(s_layout.special_index):
        t_closes[t_layout.special_index] = False  # text ends only
        s_closes[s_layout.special_index] = False
        leading = (t_layout.num_leading > 0) & (s_layout.num_leading > 0) & pair_specials
        trailing = (t_layout.num_trailing > 0) & (s_layout.num_trailing > 0) & pair_specials
        t_unpaired = t_layout.special_index[
            _special_chunks(t_layout, teacher.row_starts, leading, trailing, t_closes)
        ]
        s_unpaired = s_layout.special_index[
            _special_chunks(s_layout, student.row_starts, leading, trailing, s_closes)
        ]
    t_last, s_last = np.flatnonzero(t_closes), np.flatnonzero(s_closes)
    if len(t_last) != len(s_last) or not np.array_equal(t_ends[t_last], s_ends[s_last]):
        return None
    special = teacher.is_special[t_last]
    if not np.array_equal(special, student.is_special[s_last]):
        return None
    t_cum = np.zeros(len(t_closes) + 1, dtype=np.int64)
    np.cumsum(t_closes, out=t_cum[1:])
    s_cum = np.zeros(len(s_closes) + 1, dtype=np.int64)
    np.cumsum(s_closes, out=s_cum[1:])
    chunk_row_starts = t_cum[teacher.row_starts]
    t_chunk, s_chunk = t_cum[:-1], s_cum[:-1]  # views: t_cum is not read after this
    t_chunk[t_unpaired] = -1
    s_chunk[s_unpaired] = -1
    num_chunks = np.diff(chunk_row_starts)
    rows = np.repeat(np.arange(len(teacher), dtype=np.int64), num_chunks)
    byte_ends = teacher.byte_ends[t_last]  # row-local
    byte_starts = np.empty_like(byte_ends)  # a chunk starts where the row's previous one ends
    byte_starts[:1] = 0
    byte_starts[1:] = byte_ends[:-1]
    byte_starts[chunk_row_starts[:-1][num_chunks > 0]] = 0
    mode, bias, teacher_table, student_table = merge
    return merged_alignment(
        ChunkTable(byte_starts, byte_ends, rows, special, t_last, s_last),
        t_chunk,
        s_chunk,
        None,
        side_tokens(teacher, teacher_table),
        side_tokens(student, student_table),
        mode,
        bias,
    )
