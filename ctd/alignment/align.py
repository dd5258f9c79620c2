"""Chunks: the finest common segmentation of a text's bytes by two (or K) tokenizations.

A chunk boundary is a byte position that is a token boundary in every tokenization; chunks are
computed from byte positions only, for a whole batch at once. `align_many_batch` takes K >= 2
sides; `align_batch` / `align` are its K = 2 view (teacher = side 0, student = side 1).

Rows are laid side by side on one global byte axis with a one-byte gap between rows, so one
`np.intersect1d` and a few `searchsorted`/`bincount` calls align the whole batch. A candidate
interval between consecutive common boundaries becomes a chunk only if both sides tile it
exactly with their tokens and it is either all text on every side or all special tokens on every
side; otherwise its tokens get chunk -1 (never a silent misalignment). Zero-width specials
(BOS, EOS, chat-template tokens) present on every side at the same position may form their own
chunk (`pair_specials`); a one-sided special never joins a chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import numpy as np
import numpy.typing as npt

from ctd.alignment._assemble import Candidates, Side, assemble_chunks
from ctd.alignment._tiled import template_layout, tiled_alignment
from ctd.alignment.bias import TokenizationBias
from ctd.alignment.chunk_alignment import (
    BatchAlignment,
    BatchMultiAlignment,
    ChunkAlignment,
    MultiChunkAlignment,
)
from ctd.alignment.modes import check_pairwise_mode
from ctd.alignment.ragged import TokenizedBatch, TokenizedText, row_offsets
from ctd.alignment.token_bytes import TokenBytes

__all__ = [
    "MODES",
    "BatchAlignment",
    "BatchMultiAlignment",
    "ChunkAlignment",
    "MultiChunkAlignment",
    "align",
    "align_batch",
    "align_many",
    "align_many_batch",
]

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
MODES = ("unconstrained", "space", "unbiased")


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


def _intersect_sorted(boundaries: Sequence[Int64Array]) -> tuple[Int64Array, list[Int64Array]]:
    """The boundaries every side has, and where they are in each side's boundaries.

    `np.intersect1d(..., return_indices=True)` of K sorted unique non-negative arrays;
    membership is counted in one array over the byte axis (O(N), no sort).
    Shapes: K x (N_k,) -> (N,), K x (N,).
    """
    size = int(max(side.max(initial=-1) for side in boundaries)) + 1
    num_sides = np.zeros(size, dtype=np.int64)
    for side in boundaries:
        num_sides[side] += 1  # unique per side
    slots = [np.flatnonzero(num_sides[side] == len(boundaries)) for side in boundaries]
    return boundaries[0][slots[0]], slots


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


def _check_sides(sides: Sequence[TokenizedBatch], mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if len(sides) < 2:
        raise ValueError(f"alignment needs at least 2 tokenizations, got {len(sides)}")
    check_pairwise_mode(mode, len(sides))
    for side in sides[1:]:
        if len(side) != len(sides[0]) or np.any(side.num_text_bytes != sides[0].num_text_bytes):
            if len(sides) == 2:
                raise ValueError(
                    "teacher and student tokenized different texts (byte lengths differ)"
                )
            raise ValueError("the tokenizations are of different texts (byte lengths differ)")


def _candidate_sides(
    sides: Sequence[TokenizedBatch], row_base: Int64Array, tables: Sequence[TokenBytes | None]
) -> tuple[Int64Array, list[Side], list[tuple[BoolArray, BoolArray, BoolArray]]]:
    """Common boundaries; per side its tokens' candidate intervals and the interval statistics.

    Shapes: common (N,); per side Side arrays (M_k,) and three (N - 1,) statistics.
    """
    spans = [_global_positions(side, row_base) for side in sides]
    zero = [
        side.is_special & (end == start) for side, (start, end) in zip(sides, spans, strict=True)
    ]
    side_bounds = [
        _side_boundaries(start, end, side_zero)
        for (start, end), side_zero in zip(spans, zero, strict=True)
    ]
    common, common_slots = _intersect_sorted([bounds for bounds, _ in side_bounds])
    candidate_sides, stats = [], []
    for side, (start, end), side_zero, (bounds, slots), side_common, table in zip(
        sides, spans, zero, side_bounds, common_slots, tables, strict=True
    ):
        index = _interval_index(common, bounds, slots, side_common, start, ~side_zero)
        stats.append(_interval_stats(common, index, start, end, side.is_special))
        candidate_sides.append(Side(side, index, side_zero, start, table))
    return common, candidate_sides, stats


def _general_alignment(
    sides: Sequence[TokenizedBatch],
    row_base: Int64Array,
    tables: Sequence[TokenBytes | None],
    mode: str,
    bias: TokenizationBias | None,
    pair_specials: bool,
) -> BatchMultiAlignment:
    """The interval-statistics path: any spans, specials anywhere (see the module docstring)."""
    common, candidate_sides, stats = _candidate_sides(sides, row_base, tables)
    covered = np.all([side_covered for side_covered, _, _ in stats], axis=0)
    text_only = np.all([text & ~special for _, text, special in stats], axis=0)
    special_only = np.all([special & ~text for _, text, special in stats], axis=0)
    valid = covered & (text_only | special_only)
    interval_special = np.all([special for _, _, special in stats], axis=0)
    for attempt_pairs in (True, False) if pair_specials else (False,):
        special_positions = np.zeros(0, np.int64)
        if attempt_pairs:  # zero-width specials at a position every side has one
            zero_starts = [side.starts[side.zero_special] for side in candidate_sides]
            special_positions = reduce(np.intersect1d, zero_starts)
        candidates = Candidates(common, valid, interval_special, special_positions, row_base)
        result = assemble_chunks(candidates, candidate_sides, mode, bias)
        if result is not None:
            return result
    raise RuntimeError("chunk assembly failed: token spans overlap or are out of order")


def align_many_batch(
    sides: Sequence[TokenizedBatch],
    *,
    mode: str = "unconstrained",
    token_bytes: Sequence[TokenBytes | None] | None = None,
    bias: TokenizationBias | None = None,
    pair_specials: bool = True,
) -> BatchMultiAlignment:
    """Align every row of K >= 2 tokenized batches of the same texts (vectorised over the batch).

    A chunk boundary is a byte position that is a token boundary on every side; each side
    tiles each chunk exactly. K = 2 is `align_batch` (side 0 the teacher, side 1 the student).

    Args:
        sides: each tokenizer's tokens of the same texts.
        mode: "unconstrained", "space" (needs every side's token table) or "unbiased"
            (K = 2 only; needs bias).
        token_bytes: per side, `token_bytes(tokenizer)` or None, for mode="space".
        bias: tokenization-bias statistics of (side 0, side 1), for mode="unbiased".
        pair_specials: zero-width specials at the same position on every side form a chunk.

    Raises:
        ValueError: fewer than 2 sides, the batches are not of the same texts, `unbiased`
            with K > 2, or a mode lacks what it needs.
    """
    _check_sides(sides, mode)
    tables = list(token_bytes) if token_bytes is not None else [None] * len(sides)
    if len(tables) != len(sides):
        raise ValueError(f"token_bytes has {len(tables)} entries for {len(sides)} sides")
    layouts = []
    for side in sides:  # the fast path needs every side templated: stop at the first that is not
        layout = template_layout(side)
        if layout is None:
            break
        layouts.append(layout)
    if len(layouts) == len(sides):
        tiled = tiled_alignment(sides, layouts, pair_specials, (mode, bias, tables))
        if tiled is not None:
            return tiled
    row_base = row_offsets(sides[0].num_text_bytes + 1)[:-1]
    return _general_alignment(sides, row_base, tables, mode, bias, pair_specials)


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
    return align_many_batch(
        [teacher, student],
        mode=mode,
        token_bytes=[teacher_token_bytes, student_token_bytes],
        bias=bias,
        pair_specials=pair_specials,
    ).pair()


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


def align_many(
    sides: Sequence[TokenizedText],
    *,
    mode: str = "unconstrained",
    token_bytes: Sequence[TokenBytes | None] | None = None,
    bias: TokenizationBias | None = None,
    pair_specials: bool = True,
) -> MultiChunkAlignment:
    """Chunks shared by K >= 2 tokenizations of the same text (see `align_many_batch`).

    Args:
        sides: `encode(tokenizer_k, [text])[0]` for each tokenizer.
        mode: "unconstrained", "space" (needs every side's token table) or "unbiased" (K = 2).
        token_bytes: per side, `token_bytes(tokenizer)` or None, for mode="space".
        bias: tokenization-bias statistics of (side 0, side 1), for mode="unbiased".
        pair_specials: zero-width specials at the same position on every side form a chunk.

    Returns:
        Per side the chunk of every token and each chunk's last token; the chunks' byte spans.

    Raises:
        ValueError: as `align_many_batch`.
    """
    result = align_many_batch(
        [TokenizedBatch.from_rows([side]) for side in sides],
        mode=mode,
        token_bytes=token_bytes,
        bias=bias,
        pair_specials=pair_specials,
    )
    return result.row(0)
