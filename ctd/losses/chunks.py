"""Chunk-level quantities from per-token values and the alignment engine's sparse chunk index.

A chunk index ``(B, T)`` holds each token's chunk id (``-1``: in no chunk). Everything here is a
scatter over that index; nothing builds a dense ``(B, T, C)`` alignment matrix.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ctd.losses._checks import check_index_range, check_ndim, check_same_shape
from ctd.losses._reduce import scored_token_mask


class ChunkLogprobs(NamedTuple):
    """Per-chunk log-likelihoods and token counts (see :func:`chunk_logprobs`)."""

    logprobs: Tensor  # (B, C): sum of the scored tokens' log-probs
    num_scored: Tensor  # (B, C) long: tokens of the chunk that carry a log-prob
    num_unscored: Tensor  # (B, C) long: tokens of the chunk without one (position 0, masked)
    complete: Tensor  # (B, C) bool: >= 1 scored token and no unscored token


def infer_num_chunks(*chunk_indices: Tensor) -> int:
    """Number of chunk columns needed: the largest chunk id plus one (0 if all are -1)."""
    return max((int(i.max()) + 1 if i.numel() else 0) for i in chunk_indices)


def _dump_column(chunk_index: Tensor, num_chunks: int) -> Tensor:
    """Chunk ids with -1 replaced by an extra dump column ``num_chunks``."""
    return torch.where(chunk_index >= 0, chunk_index, num_chunks)  # (B, T)


def chunk_logprobs(
    token_logprobs: Tensor,
    chunk_index: Tensor,
    *,
    num_chunks: int | None = None,
    token_mask: Tensor | None = None,
) -> ChunkLogprobs:
    """Sum each chunk's token log-probs by scatter-add over the sparse chunk index.

    ``token_mask`` marks tokens whose log-prob is valid (default: all); position 0 never is.
    A chunk is ``complete`` when every one of its tokens is scored and it has at least one.
    Also the building block of a bits-per-byte metric.

    Shapes: token_logprobs (B, T), chunk_index (B, T), token_mask (B, T) -> 3 x (B, C), C =
    num_chunks.
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083, Sec. 3 (chunk likelihoods).
    """
    check_ndim("token_logprobs", token_logprobs, 2)
    check_same_shape("chunk_index", chunk_index, "token_logprobs", token_logprobs)
    columns = infer_num_chunks(chunk_index) if num_chunks is None else num_chunks
    check_index_range("chunk_index", chunk_index, -1, columns)
    scored = scored_token_mask(token_logprobs, token_mask, "token_mask")  # (B, T)
    in_chunk = chunk_index >= 0  # (B, T)
    column = _dump_column(chunk_index, columns)  # (B, T)
    batch = token_logprobs.shape[0]
    values = torch.where(scored & in_chunk, token_logprobs, torch.zeros_like(token_logprobs))
    sums = values.new_zeros(batch, columns + 1).scatter_add(1, column, values)  # (B, C+1)
    counts = torch.zeros(batch, columns + 1, dtype=torch.long, device=column.device)
    num_scored = counts.scatter_add(1, column, (scored & in_chunk).long())[:, :columns]
    num_unscored = counts.scatter_add(1, column, (in_chunk & ~scored).long())[:, :columns]
    complete = (num_scored > 0) & (num_unscored == 0)  # (B, C)
    return ChunkLogprobs(sums[:, :columns], num_scored, num_unscored, complete)


def chunk_last_token(chunk_index: Tensor, num_chunks: int) -> Tensor:
    """Position of each chunk's last token (scatter_reduce amax), -1 for a chunk with no token.

    Shapes: chunk_index (B, T) -> (B, C).
    """
    batch, length = chunk_index.shape
    positions = torch.arange(length, device=chunk_index.device).expand(batch, length)  # (B, T)
    positions = torch.where(chunk_index >= 0, positions, -1)
    init = torch.full((batch, num_chunks + 1), -1, dtype=torch.long, device=chunk_index.device)
    column = _dump_column(chunk_index, num_chunks)
    last = init.scatter_reduce(1, column, positions, reduce="amax", include_self=True)
    return last[:, :num_chunks]  # (B, C)


def gather_chunk_ends(values: Tensor, chunk_index: Tensor, num_chunks: int) -> Tensor:
    """Value at each chunk's last token (e.g. the space log-prob or a hidden state); 0 if empty.

    Shapes: values (B, T) or (B, T, d), chunk_index (B, T) -> (B, C) or (B, C, d).
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083, Sec. 3.
    """
    if values.shape[:2] != chunk_index.shape:
        raise ValueError(
            f"values {tuple(values.shape)} and chunk_index {tuple(chunk_index.shape)} "
            "must agree in their first two dimensions"
        )
    last = chunk_last_token(chunk_index, num_chunks)  # (B, C)
    index = last.clamp_min(0)
    present = last >= 0
    if values.dim() == 2:
        gathered = values.gather(1, index)  # (B, C)
        return torch.where(present, gathered, torch.zeros_like(gathered))
    width = values.shape[-1]
    gathered = values.gather(1, index.unsqueeze(-1).expand(-1, -1, width))  # (B, C, d)
    return torch.where(present.unsqueeze(-1), gathered, torch.zeros_like(gathered))
