"""Chunks: the finest common segmentation of a text's bytes by two tokenizations.

A chunk boundary is a byte position that is a token boundary in both tokenizations; chunks are
computed from byte positions only, for a whole batch at once.

Rows are laid side by side on one global byte axis with a one-byte gap between rows, so one
`np.intersect1d` and a few `searchsorted`/`bincount` calls align the whole batch. A candidate
interval between consecutive common boundaries becomes a chunk only if both sides tile it
exactly with their tokens and it is either all text on both sides or all special tokens on both
sides; otherwise its tokens get chunk -1 (never a silent misalignment). Zero-width specials
(BOS, EOS, chat-template tokens) present on both sides at the same position may form their own
chunk (`pair_specials`); a one-sided special never joins a chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ctd.alignment.bias import TokenizationBias
from ctd.alignment.modes import ChunkTable, SideTokens, merge_chunks
from ctd.alignment.ragged import TokenizedBatch, TokenizedText, row_offsets
from ctd.alignment.token_bytes import TokenBytes

__all__ = ["MODES", "BatchAlignment", "ChunkAlignment", "align", "align_batch"]

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
MODES = ("unconstrained", "space", "unbiased")


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


def _global_positions(batch: TokenizedBatch, row_base: Int64Array) -> tuple[Int64Array, Int64Array]:
    """Token spans on the global byte axis. Shapes: (M,), (M,)."""
    shift = row_base[batch.token_rows]
    return batch.byte_starts + shift, batch.byte_ends + shift


def _side_boundaries(
    starts: Int64Array, ends: Int64Array, zero_special: BoolArray
) -> tuple[Int64Array, Int64Array | None]:
    """Sorted unique token boundaries of one side, and where each kept token's start is in them.

    Tokens come in text order, so start_0, end_0, start_1, end_1, ... is already sorted; only
    duplicates need removing (no sort, no hashing). Shapes: (M,) -> (N,), (kept M,) or None
    when spans are out of order (then the general `np.unique` path is taken).
    """
    keep = ~zero_special
    interleaved = np.stack([starts[keep], ends[keep]], axis=1).ravel()
    if len(interleaved) and np.any(interleaved[1:] < interleaved[:-1]):
        return np.unique(interleaved), None
    first = np.ones(len(interleaved), dtype=np.bool_)
    first[1:] = interleaved[1:] != interleaved[:-1]
    slot = np.cumsum(first) - 1
    return interleaved[first], slot[0::2]


def _intersect_sorted(
    first: Int64Array, second: Int64Array
) -> tuple[Int64Array, Int64Array, Int64Array]:
    """`np.intersect1d(..., return_indices=True)` of two sorted unique non-negative arrays.

    Membership is looked up in a bitmap over the byte axis (O(N), no sort).
    Shapes: (N1,), (N2,) -> (K,), (K,), (K,).
    """
    size = int(max(first.max(initial=-1), second.max(initial=-1))) + 1
    in_second = np.zeros(size, dtype=np.bool_)
    in_second[second] = True
    first_slots = np.flatnonzero(in_second[first])
    common = first[first_slots]
    in_first = np.zeros(size, dtype=np.bool_)
    in_first[common] = True
    return common, first_slots, np.flatnonzero(in_first[second])


def _interval_index(
    common: Int64Array,
    boundaries: Int64Array,
    start_slots: Int64Array | None,
    common_slots: Int64Array,
    starts: Int64Array,
    keep: BoolArray,
) -> Int64Array:
    """Candidate interval of each token (-1 for tokens not kept or outside). Shapes: (M,).

    With `start_slots` (each kept token's start as an index into `boundaries`), the interval is
    a running count of common boundaries: O(M), no binary search.
    """
    num_intervals = max(len(common) - 1, 0)
    if start_slots is None:
        index = np.searchsorted(common, starts, "right") - 1
    else:
        is_common = np.zeros(len(boundaries), dtype=np.int64)
        is_common[common_slots] = 1
        index = np.full(len(starts), -1, dtype=np.int64)
        index[keep] = np.cumsum(is_common)[start_slots] - 1
    inside = keep & (index >= 0) & (index < num_intervals)
    return np.where(inside, index, -1)


def _interval_stats(
    common: Int64Array, index: Int64Array, starts: Int64Array, ends: Int64Array, special: BoolArray
) -> tuple[BoolArray, BoolArray, BoolArray]:
    """Per candidate interval: (covered exactly, has text, has special).

    Shapes: common (K + 1,); index, starts, ends, special (M,) -> (K,), (K,), (K,).
    """
    num_intervals = max(len(common) - 1, 0)
    inside = index >= 0
    widths = ends - starts
    upper = common[np.minimum(index + 1, len(common) - 1)] if len(common) else ends
    overflow = inside & (ends > upper)
    valid_index = index[inside]
    covered = np.bincount(valid_index, weights=widths[inside], minlength=num_intervals)
    lengths = np.diff(common)
    bad = np.zeros(num_intervals, dtype=np.bool_)
    bad[index[overflow]] = True
    num_tokens = np.bincount(valid_index, minlength=num_intervals)
    has_special = np.zeros(num_intervals, dtype=np.bool_)
    special_index = index[inside & special]
    has_special[special_index] = True
    num_special = np.bincount(special_index, minlength=num_intervals)
    return (covered == lengths) & ~bad, num_tokens > num_special, has_special


def _first_last(chunk_index: Int64Array, num_chunks: int) -> tuple[Int64Array, Int64Array, bool]:
    """First and last token of each chunk, and whether every chunk is contiguous and non-empty.

    Shapes: (M,) -> (C,), (C,).
    """
    positions = np.flatnonzero(chunk_index >= 0)
    ids = chunk_index[positions]
    empty = np.zeros(0, np.int64)
    if len(ids) == 0:
        return empty, empty, num_chunks == 0
    change = np.flatnonzero(ids[1:] != ids[:-1])
    first_slot = np.concatenate([[0], change + 1])
    last_slot = np.concatenate([change, [len(ids) - 1]])
    if len(first_slot) != num_chunks or np.any(ids[first_slot] != np.arange(num_chunks)):
        return empty, empty, False  # a chunk is missing, repeated or out of order
    first, last = positions[first_slot], positions[last_slot]
    return first, last, bool(np.all(last - first == last_slot - first_slot))


def _token_chunks(
    interval_index: Int64Array,
    interval_to_chunk: Int64Array,
    zero_special: BoolArray,
    starts: Int64Array,
    special_positions: Int64Array,
    special_chunk: Int64Array,
) -> Int64Array:
    """Chunk of every token of one side (global chunk ids). Shapes: (M,) -> (M,)."""
    chunk = np.full(len(interval_index), -1, dtype=np.int64)
    in_interval = interval_index >= 0
    chunk[in_interval] = interval_to_chunk[interval_index[in_interval]]
    if len(special_positions):
        where = np.flatnonzero(zero_special)
        slot = np.minimum(
            np.searchsorted(special_positions, starts[where]), len(special_positions) - 1
        )
        hit = special_positions[slot] == starts[where]
        chunk[where[hit]] = special_chunk[slot[hit]]
    return chunk


def _check_pair(teacher: TokenizedBatch, student: TokenizedBatch, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if len(teacher) != len(student) or np.any(teacher.num_text_bytes != student.num_text_bytes):
        raise ValueError("teacher and student tokenized different texts (byte lengths differ)")


def align_batch(
    teacher: TokenizedBatch,
    student: TokenizedBatch,
    *,
    mode: str = "unconstrained",
    teacher_token_bytes: TokenBytes | None = None,
    student_token_bytes: TokenBytes | None = None,
    bias: TokenizationBias | None = None,
    pair_specials: bool = True,
) -> BatchAlignment:
    """Align every row of two tokenized batches of the same texts (vectorised over the batch).

    Args:
        teacher: the teacher's tokens.
        student: the student's tokens of the same texts.
        mode: "unconstrained", "space" (needs both token tables) or "unbiased" (needs bias).
        teacher_token_bytes: `token_bytes(teacher tokenizer)`, for mode="space".
        student_token_bytes: `token_bytes(student tokenizer)`, for mode="space".
        bias: tokenization-bias statistics, for mode="unbiased".
        pair_specials: zero-width specials at the same position on both sides form a chunk.

    Raises:
        ValueError: the batches are not of the same texts, or a mode lacks what it needs.
    """
    _check_pair(teacher, student, mode)
    row_base = row_offsets(teacher.num_text_bytes + 1)[:-1]
    teacher_layout = _template_layout(teacher)
    student_layout = _template_layout(student) if teacher_layout is not None else None
    if teacher_layout is not None and student_layout is not None:
        tiled = _tiled_alignment(
            teacher,
            student,
            (teacher_layout, student_layout),
            pair_specials,
            (mode, bias, teacher_token_bytes, student_token_bytes),
        )
        if tiled is not None:
            return tiled
    t_starts, t_ends = _global_positions(teacher, row_base)
    s_starts, s_ends = _global_positions(student, row_base)
    t_zero = teacher.is_special & (t_ends == t_starts)
    s_zero = student.is_special & (s_ends == s_starts)
    t_bounds, t_slots = _side_boundaries(t_starts, t_ends, t_zero)
    s_bounds, s_slots = _side_boundaries(s_starts, s_ends, s_zero)
    common, t_common, s_common = _intersect_sorted(t_bounds, s_bounds)
    t_index = _interval_index(common, t_bounds, t_slots, t_common, t_starts, ~t_zero)
    s_index = _interval_index(common, s_bounds, s_slots, s_common, s_starts, ~s_zero)
    t_cov, t_text, t_spec = _interval_stats(common, t_index, t_starts, t_ends, teacher.is_special)
    s_cov, s_text, s_spec = _interval_stats(common, s_index, s_starts, s_ends, student.is_special)
    valid = (
        t_cov
        & s_cov
        & ((t_text & s_text & ~t_spec & ~s_spec) | (t_spec & s_spec & ~t_text & ~s_text))
    )
    t_side = _Side(teacher, t_index, t_zero, t_starts, teacher_token_bytes)
    s_side = _Side(student, s_index, s_zero, s_starts, student_token_bytes)
    interval_special = t_spec & s_spec
    for attempt_pairs in (True, False) if pair_specials else (False,):
        special_positions = np.zeros(0, np.int64)
        if attempt_pairs:
            special_positions = np.intersect1d(t_starts[t_zero], s_starts[s_zero])
        candidates = _Candidates(common, valid, interval_special, special_positions, row_base)
        result = _assemble(candidates, t_side, s_side, mode, bias)
        if result is not None:
            return result
    raise RuntimeError("chunk assembly failed: token spans overlap or are out of order")


@dataclass(frozen=True)
class _Layout:
    """Where a batch's zero-width specials stand when it is eligible for `_tiled_alignment`.

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


def _template_layout(batch: TokenizedBatch) -> _Layout | None:
    """The layout of a batch of templated texts, or None if it is not one (checked in O(M)).

    Eligible: in every row, non-special tokens of positive width tile its bytes in order, and
    every special token is zero-width at byte 0 before them or at the end after them (BOS,
    EOS, plain text when there are none). Then every interval between consecutive common
    boundaries is tiled exactly by text tokens on both sides and `_tiled_alignment` applies.
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
    return _Layout(special_index, special_rows, leading, num_leading, num_trailing)


def _special_chunks(
    layout: _Layout,
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


def _tiled_alignment(
    teacher: TokenizedBatch,
    student: TokenizedBatch,
    layouts: tuple[_Layout, _Layout],
    pair_specials: bool,
    merge: tuple[str, TokenizationBias | None, TokenBytes | None, TokenBytes | None],
) -> BatchAlignment | None:
    """`align_batch` for templated texts (`_template_layout`): O(M), no interval statistics.

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
    return _merged(
        ChunkTable(byte_starts, byte_ends, rows, special, t_last, s_last),
        t_chunk,
        s_chunk,
        None,
        _side_tokens(teacher, teacher_table),
        _side_tokens(student, student_table),
        mode,
        bias,
    )


@dataclass(frozen=True)
class _Side:
    batch: TokenizedBatch
    interval_index: Int64Array
    zero_special: BoolArray
    starts: Int64Array
    table: TokenBytes | None


@dataclass(frozen=True)
class _Candidates:
    common: Int64Array
    valid: BoolArray
    interval_special: BoolArray
    special_positions: Int64Array
    row_base: Int64Array


def _sorted_chunks(candidates: _Candidates) -> tuple[Int64Array, Int64Array, Int64Array, BoolArray]:
    """(rank of each candidate chunk, byte starts, byte ends, is special), sorted by position.

    A zero-width special chunk sorts before a text chunk that starts where it stands.
    Shapes: each output (C,).
    """
    interval_ids = np.flatnonzero(candidates.valid)
    positions = candidates.special_positions
    starts = np.concatenate([candidates.common[interval_ids], positions]).astype(np.int64)
    ends = np.concatenate([candidates.common[interval_ids + 1], positions]).astype(np.int64)
    zero_width = np.concatenate([np.zeros(len(interval_ids), bool), np.ones(len(positions), bool)])
    special = np.concatenate(
        [candidates.interval_special[interval_ids], zero_width[len(interval_ids) :]]
    )
    # merge two sorted lists; a zero-width special goes before a text chunk at its position
    num_intervals = len(interval_ids)
    rank = np.concatenate(
        [
            np.arange(num_intervals) + np.searchsorted(positions, starts[:num_intervals], "right"),
            np.arange(len(positions)) + np.searchsorted(starts[:num_intervals], positions, "left"),
        ]
    ).astype(np.int64)
    if not len(positions):
        return rank, starts, ends, special
    order = np.empty(len(rank), dtype=np.int64)
    order[rank] = np.arange(len(rank))
    return rank, starts[order], ends[order], special[order]


def _assemble(
    candidates: _Candidates,
    teacher: _Side,
    student: _Side,
    mode: str,
    bias: TokenizationBias | None,
) -> BatchAlignment | None:
    """Number, merge and localise the chunks; None if a paired special chunk is not contiguous."""
    rank, starts, ends, special = _sorted_chunks(candidates)
    interval_ids = np.flatnonzero(candidates.valid)
    interval_to_chunk = np.full(len(candidates.valid), -1, dtype=np.int64)
    interval_to_chunk[interval_ids] = rank[: len(interval_ids)]
    special_chunk = rank[len(interval_ids) :]
    chunks = [
        _token_chunks(
            side.interval_index,
            interval_to_chunk,
            side.zero_special,
            side.starts,
            candidates.special_positions,
            special_chunk,
        )
        for side in (teacher, student)
    ]
    bounds = [_first_last(chunk, len(starts)) for chunk in chunks]
    if not (bounds[0][2] and bounds[1][2]):
        return None
    rows = np.searchsorted(candidates.row_base, starts, "right") - 1
    table = ChunkTable(starts, ends, rows, special, bounds[0][1], bounds[1][1])
    return _merged(
        table,
        chunks[0],
        chunks[1],
        candidates.row_base,
        _side_tokens(teacher.batch, teacher.table),
        _side_tokens(student.batch, student.table),
        mode,
        bias,
    )


def _side_tokens(batch: TokenizedBatch, table: TokenBytes | None) -> SideTokens:
    return SideTokens(batch.input_ids, batch.is_special, batch.row_starts, table)


def _merged(
    table: ChunkTable,
    teacher_chunk: Int64Array,
    student_chunk: Int64Array,
    row_base: Int64Array | None,
    teacher: SideTokens,
    student: SideTokens,
    mode: str,
    bias: TokenizationBias | None,
) -> BatchAlignment:
    """Merge the chunks by `mode` and make chunk and token indices row-local.

    Shapes: table (C,) with flat token indices, its bytes on the global byte axis starting
    rows at `row_base` (None: already row-local); *_chunk (M,) global chunk ids, -1 = in no
    chunk.
    """
    starts, ends, rows = table.byte_starts, table.byte_ends, table.rows
    chunks = (teacher_chunk, student_chunk)
    group = merge_chunks(table, mode, teacher, student, bias)
    num_groups = int(group[-1]) + 1 if len(group) else 0
    first_chunk: Int64Array | slice
    last_chunk: Int64Array | slice
    if num_groups == len(group):  # no merges: every chunk is its own group, no gathers
        first_chunk = last_chunk = slice(None)
    else:
        last_chunk = np.searchsorted(group, np.arange(num_groups), "right") - 1
        first_chunk = np.searchsorted(group, np.arange(num_groups), "left")
    group_rows = rows[first_chunk]
    num_rows = len(teacher.row_starts) - 1
    chunk_row_starts = row_offsets(np.bincount(group_rows, minlength=num_rows))
    local = [
        _local_chunks(chunk, group, num_groups, chunk_row_starts, side.row_starts, row_base)
        for chunk, side in zip(chunks, (teacher, student), strict=True)
    ]
    base = 0 if row_base is None else row_base[group_rows]
    t_last, s_last = table.teacher_last_token[last_chunk], table.student_last_token[last_chunk]
    return BatchAlignment(
        teacher_chunk_index=local[0],
        student_chunk_index=local[1],
        chunk_byte_starts=starts[first_chunk] - base,
        chunk_byte_ends=ends[last_chunk] - base,
        teacher_chunk_last_token=t_last - teacher.row_starts[group_rows],
        student_chunk_last_token=s_last - student.row_starts[group_rows],
        chunk_row_starts=chunk_row_starts,
        teacher_row_starts=teacher.row_starts,
        student_row_starts=student.row_starts,
    )


def _local_chunks(
    chunk: Int64Array,
    group: Int64Array,
    num_groups: int,
    chunk_row_starts: Int64Array,
    row_starts: Int64Array,
    row_base: Int64Array | None,
) -> Int64Array:
    """Global chunk ids -> per-row merged chunk ids, -1 kept. Shapes: (M,) -> (M,).

    `row_base` None: from `_tiled_alignment`, where every token but unpaired specials is in a
    chunk.
    """
    local = chunk if num_groups == len(group) else np.concatenate([group, [-1]])[chunk]
    local = local - np.repeat(chunk_row_starts[:-1], np.diff(row_starts))
    if row_base is not None or (len(chunk) and chunk.min() < 0):
        local[chunk < 0] = -1
    return local


def align(
    teacher: TokenizedText,
    student: TokenizedText,
    *,
    mode: str = "unconstrained",
    teacher_token_bytes: TokenBytes | None = None,
    student_token_bytes: TokenBytes | None = None,
    bias: TokenizationBias | None = None,
    pair_specials: bool = True,
) -> ChunkAlignment:
    """Chunks shared by a teacher and a student tokenization of the same text.

    Args:
        teacher: `encode(teacher_tokenizer, [text])[0]`.
        student: `encode(student_tokenizer, [text])[0]`.
        mode: "unconstrained", "space" (needs both token tables) or "unbiased" (needs bias).
        teacher_token_bytes: `token_bytes(teacher tokenizer)`, for mode="space".
        student_token_bytes: `token_bytes(student tokenizer)`, for mode="space".
        bias: tokenization-bias statistics, for mode="unbiased".
        pair_specials: zero-width specials at the same position on both sides form a chunk.

    Returns:
        The chunk of every token and each chunk's byte span and last tokens.

    Raises:
        ValueError: the two tokenizations are not of the same text, or a mode lacks its input.
    """
    result = align_batch(
        TokenizedBatch.from_rows([teacher]),
        TokenizedBatch.from_rows([student]),
        mode=mode,
        teacher_token_bytes=teacher_token_bytes,
        student_token_bytes=student_token_bytes,
        bias=bias,
        pair_specials=pair_specials,
    )
    return result.row(0)
