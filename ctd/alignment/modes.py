"""The paper's chunk modes: merge consecutive unconstrained chunks.

* `unconstrained`: keep every chunk.
* `space`: a boundary survives only where the next token on both sides starts with whitespace
  or is special (word-level chunks).
* `unbiased`: a boundary survives only where the pair of last tokens has a tokenization bias
  at most the threshold on both sides (`TokenizationBias`, from `ctd tokenizer-bias`).

With K sides (`align_many`), `space` asks it of every side; `unbiased` is pairwise (K = 2).

Boundaries between rows, around special-token chunks and across a gap (bytes in no chunk) always
survive, so a merged chunk is still contiguous and covers equal bytes on every side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ctd.alignment.bias import TokenizationBias
from ctd.alignment.token_bytes import TokenBytes

__all__ = ["ChunkTable", "check_pairwise_mode", "merge_chunks"]

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ChunkTable:
    """Chunks of a batch on the global axis (token indices are flat batch positions).

    Shapes: every array (C,); `last_tokens` holds one (C,) array per side.
    """

    byte_starts: Int64Array
    byte_ends: Int64Array
    rows: Int64Array
    is_special: BoolArray
    last_tokens: tuple[Int64Array, ...]


@dataclass(frozen=True)
class SideTokens:
    """What the modes need of one side: flat ids, special flags, rows and the vocabulary table.

    Shapes: input_ids, is_special (M,); row_starts (R + 1,).
    """

    input_ids: Int64Array
    is_special: BoolArray
    row_starts: Int64Array
    table: TokenBytes | None


def check_pairwise_mode(mode: str, num_sides: int) -> None:
    """Refuse `unbiased` for other than two sides: its bias statistics are of one pair.

    Raises:
        ValueError: mode is "unbiased" and there are not exactly two sides.
    """
    if mode == "unbiased" and num_sides != 2:
        raise ValueError(
            f"mode='unbiased' is pairwise (a teacher/student bias table); {num_sides} "
            "tokenizations were given: use mode='unconstrained' or 'space'"
        )


def _next_is_space(last_token: Int64Array, side: SideTokens) -> BoolArray:
    """Whether the token after each chunk's last token starts with whitespace or is special."""
    if side.table is None:
        raise ValueError(
            "mode='space' needs the token bytes of every side (teacher_token_bytes and "
            "student_token_bytes)"
        )
    following = np.minimum(last_token + 1, len(side.input_ids) - 1)
    ids = side.input_ids[following]
    return np.asarray(side.table.starts_with_whitespace[ids] | side.is_special[following])


def merge_chunks(
    chunks: ChunkTable,
    mode: str,
    sides: Sequence[SideTokens],
    bias: TokenizationBias | None,
) -> Int64Array:
    """Group id of each chunk after merging by `mode` (groups are runs of chunks).

    `sides` are in the order of `chunks.last_tokens`; for `unbiased`, (teacher, student).
    Shapes: chunks (C,) -> (C,).
    """
    num_chunks = len(chunks.byte_starts)
    if num_chunks == 0 or mode == "unconstrained":
        return np.arange(num_chunks, dtype=np.int64)
    forced = (
        (chunks.rows[1:] != chunks.rows[:-1])
        | chunks.is_special[1:]
        | chunks.is_special[:-1]
        | (chunks.byte_starts[1:] != chunks.byte_ends[:-1])
    )
    if mode == "space":
        keep = np.ones(num_chunks - 1, dtype=np.bool_)
        for last_token, side in zip(chunks.last_tokens, sides, strict=True):
            keep &= _next_is_space(last_token[:-1], side)
    elif mode == "unbiased":
        if bias is None:
            raise ValueError("mode='unbiased' needs bias=TokenizationBias (ctd tokenizer-bias)")
        check_pairwise_mode(mode, len(sides))
        (teacher_last, student_last), (teacher, student) = chunks.last_tokens, sides
        keep = bias.is_unbiased(
            teacher.input_ids[teacher_last[:-1]], student.input_ids[student_last[:-1]]
        )
    else:
        raise ValueError(f"unknown mode {mode!r}; choose one of unconstrained, space, unbiased")
    starts_group = np.concatenate([[True], forced | keep])
    return (np.cumsum(starts_group) - 1).astype(np.int64)
