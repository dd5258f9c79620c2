"""Per-chunk sums of token values and which chunks are fully scored (scatter-add on torch)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def chunk_sums(values: Tensor, chunk_index: Tensor, num_chunks: int) -> Tensor:
    """Sum `values` over the tokens of each chunk; tokens with `chunk_index == -1` add nothing.

    Shapes: values (B, T), chunk_index (B, T) long -> (B, num_chunks) in `values`' dtype.
    """
    index = torch.where(chunk_index >= 0, chunk_index, num_chunks)  # column C collects the rest
    sums = torch.zeros(values.shape[0], num_chunks + 1, dtype=values.dtype, device=values.device)
    return sums.scatter_add_(1, index, values)[:, :num_chunks]


def scored_token_mask(chunk_index: Tensor, token_mask: Tensor | None = None) -> Tensor:
    """Tokens that have a log-prob: inside a chunk, not position 0, and in `token_mask`.

    Shapes: chunk_index (B, T), token_mask (B, T) bool or None -> (B, T) bool.
    """
    scored = chunk_index >= 0
    scored[:, 0] = False  # position 0 has no log p(x_0 | x_<0)
    if token_mask is not None:
        scored &= token_mask.bool()
    return scored


def valid_chunk_mask(
    chunk_index: Tensor, num_chunks: int, token_mask: Tensor | None = None
) -> Tensor:
    """Chunks all of whose tokens have a log-prob (see `scored_token_mask`), with >= 1 token.

    Shapes: chunk_index (B, T), token_mask (B, T) bool or None -> (B, num_chunks) bool.
    """
    inside = (chunk_index >= 0).long()
    scored = scored_token_mask(chunk_index, token_mask).long()
    num_tokens = chunk_sums(inside, chunk_index, num_chunks)
    num_scored = chunk_sums(scored, chunk_index, num_chunks)
    return (num_tokens > 0) & (num_scored == num_tokens)


def chunk_logprobs_in_bits(
    token_logprobs: Tensor, chunk_index: Tensor, num_chunks: int, token_mask: Tensor | None = None
) -> Tensor:
    """Log2-likelihood of each chunk (sum over its scored tokens), in float64.

    Shapes: token_logprobs (B, T) natural log, chunk_index (B, T) -> (B, num_chunks).
    """
    scored = scored_token_mask(chunk_index, token_mask)
    logprobs = torch.where(scored, token_logprobs.double(), 0.0)  # NaN-safe outside
    return chunk_sums(logprobs, chunk_index, num_chunks) / math.log(2.0)


def joint_valid_chunk_mask(
    teacher_chunk_index: Tensor,
    student_chunk_index: Tensor,
    chunk_num_bytes: Tensor,
    teacher_token_mask: Tensor | None = None,
    student_token_mask: Tensor | None = None,
) -> Tensor:
    """Chunks valid on both sides and with bytes: give it to both `BitsPerByte`s as `chunk_mask`.

    Shapes: *_chunk_index (B, Tt) and (B, Ts), chunk_num_bytes (B, C) -> (B, C) bool.
    """
    num_chunks = chunk_num_bytes.shape[1]
    return (
        valid_chunk_mask(teacher_chunk_index, num_chunks, teacher_token_mask)
        & valid_chunk_mask(student_chunk_index, num_chunks, student_token_mask)
        & (chunk_num_bytes > 0)
    )
