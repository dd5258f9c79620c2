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

import numpy as np
import numpy.typing as npt

from ctd.alignment._assemble import Candidates, Side, assemble_chunks
from ctd.alignment._tiled import template_layout, tiled_alignment
from ctd.alignment.bias import TokenizationBias
from ctd.alignment.chunk_alignment import BatchAlignment, ChunkAlignment
from ctd.alignment.ragged import TokenizedBatch, TokenizedText, row_offsets
from ctd.alignment.token_bytes import TokenBytes

__all__ = ["MODES", "BatchAlignment", "ChunkAlignment", "align", "align_batch"]

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
    teacher_layout = template_layout(teacher)
    student_layout = template_layout(student) if teacher_layout is not None else None
    if teacher_layout is not None and student_layout is not None:
        tiled = tiled_alignment(
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
    t_side = Side(teacher, t_index, t_zero, t_starts, teacher_token_bytes)
    s_side = Side(student, s_index, s_zero, s_starts, student_token_bytes)
    interval_special = t_spec & s_spec
    for attempt_pairs in (True, False) if pair_specials else (False,):
        special_positions = np.zeros(0, np.int64)
        if attempt_pairs:
            special_positions = np.intersect1d(t_starts[t_zero], s_starts[s_zero])
        candidates = Candidates(common, valid, interval_special, special_positions, row_base)
        result = assemble_chunks(candidates, t_side, s_side, mode, bias)
        if result is not None:
            return result
    raise RuntimeError("chunk assembly failed: token spans overlap or are out of order")


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
