"""Chunk assembly shared by the general and the tiled alignment paths (mode merges, per-row ids).

Every function takes K sides (K >= 2) in one order; the pair is K = 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ctd.alignment.bias import TokenizationBias
from ctd.alignment.chunk_alignment import BatchMultiAlignment
from ctd.alignment.modes import ChunkTable, SideTokens, merge_chunks
from ctd.alignment.ragged import TokenizedBatch, row_offsets
from ctd.alignment.token_bytes import TokenBytes

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def first_last(chunk_index: Int64Array, num_chunks: int) -> tuple[Int64Array, Int64Array, bool]:
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


def token_chunks(
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


@dataclass(frozen=True)
class Side:
    batch: TokenizedBatch
    interval_index: Int64Array
    zero_special: BoolArray
    starts: Int64Array
    table: TokenBytes | None


@dataclass(frozen=True)
class Candidates:
    common: Int64Array
    valid: BoolArray
    interval_special: BoolArray
    special_positions: Int64Array
    row_base: Int64Array


def _sorted_chunks(candidates: Candidates) -> tuple[Int64Array, Int64Array, Int64Array, BoolArray]:
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


def assemble_chunks(
    candidates: Candidates,
    sides: Sequence[Side],
    mode: str,
    bias: TokenizationBias | None,
) -> BatchMultiAlignment | None:
    """Number, merge and localise the chunks; None if a paired special chunk is not contiguous."""
    rank, starts, ends, special = _sorted_chunks(candidates)
    interval_ids = np.flatnonzero(candidates.valid)
    interval_to_chunk = np.full(len(candidates.valid), -1, dtype=np.int64)
    interval_to_chunk[interval_ids] = rank[: len(interval_ids)]
    special_chunk = rank[len(interval_ids) :]
    chunks = [
        token_chunks(
            side.interval_index,
            interval_to_chunk,
            side.zero_special,
            side.starts,
            candidates.special_positions,
            special_chunk,
        )
        for side in sides
    ]
    bounds = [first_last(chunk, len(starts)) for chunk in chunks]
    if not all(contiguous for _, _, contiguous in bounds):
        return None
    rows = np.searchsorted(candidates.row_base, starts, "right") - 1
    table = ChunkTable(starts, ends, rows, special, tuple(last for _, last, _ in bounds))
    return merged_alignment(
        table,
        chunks,
        candidates.row_base,
        [side_tokens(side.batch, side.table) for side in sides],
        mode,
        bias,
    )


def side_tokens(batch: TokenizedBatch, table: TokenBytes | None) -> SideTokens:
    return SideTokens(batch.input_ids, batch.is_special, batch.row_starts, table)


def merged_alignment(
    table: ChunkTable,
    side_chunks: Sequence[Int64Array],
    row_base: Int64Array | None,
    sides: Sequence[SideTokens],
    mode: str,
    bias: TokenizationBias | None,
) -> BatchMultiAlignment:
    """Merge the chunks by `mode` and make chunk and token indices row-local.

    Shapes: table (C,) with flat token indices, its bytes on the global byte axis starting
    rows at `row_base` (None: already row-local); side_chunks[k] (M_k,) global chunk ids,
    -1 = in no chunk.
    """
    starts, ends, rows = table.byte_starts, table.byte_ends, table.rows
    group = merge_chunks(table, mode, sides, bias)
    num_groups = int(group[-1]) + 1 if len(group) else 0
    first_chunk: Int64Array | slice
    last_chunk: Int64Array | slice
    if num_groups == len(group):  # no merges: every chunk is its own group, no gathers
        first_chunk = last_chunk = slice(None)
    else:
        last_chunk = np.searchsorted(group, np.arange(num_groups), "right") - 1
        first_chunk = np.searchsorted(group, np.arange(num_groups), "left")
    group_rows = rows[first_chunk]
    num_rows = len(sides[0].row_starts) - 1
    chunk_row_starts = row_offsets(np.bincount(group_rows, minlength=num_rows))
    local = [
        local_chunks(chunk, group, num_groups, chunk_row_starts, side.row_starts, row_base)
        for chunk, side in zip(side_chunks, sides, strict=True)
    ]
    base = 0 if row_base is None else row_base[group_rows]
    return BatchMultiAlignment(
        chunk_index=tuple(local),
        chunk_byte_starts=starts[first_chunk] - base,
        chunk_byte_ends=ends[last_chunk] - base,
        chunk_last_token=tuple(
            last[last_chunk] - side.row_starts[group_rows]
            for last, side in zip(table.last_tokens, sides, strict=True)
        ),
        chunk_row_starts=chunk_row_starts,
        row_starts=tuple(side.row_starts for side in sides),
    )


def local_chunks(
    chunk: Int64Array,
    group: Int64Array,
    num_groups: int,
    chunk_row_starts: Int64Array,
    row_starts: Int64Array,
    row_base: Int64Array | None,
) -> Int64Array:
    """Global chunk ids -> per-row merged chunk ids, -1 kept. Shapes: (M,) -> (M,).

    `row_base` None: from `tiled_alignment`, where every token but unpaired specials is in a
    chunk.
    """
    local = chunk if num_groups == len(group) else np.concatenate([group, [-1]])[chunk]
    local = local - np.repeat(chunk_row_starts[:-1], np.diff(row_starts))
    if row_base is not None or (len(chunk) and chunk.min() < 0):
        local[chunk < 0] = -1
    return local
