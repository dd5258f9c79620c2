"""Chunk log-likelihoods in bits and chunk validity, on top of `ctd.losses.chunk_logprobs`."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ctd.losses import ChunkLogprobs, chunk_logprobs


def chunk_logprobs_float64(
    token_logprobs: Tensor, chunk_index: Tensor, num_chunks: int, token_mask: Tensor | None = None
) -> ChunkLogprobs:
    """`ctd.losses.chunk_logprobs` summed in float64, detached (metrics keep no graph).

    Shapes: token_logprobs (B, T) natural log, chunk_index (B, T), token_mask (B, T) ->
        fields (B, num_chunks).
    """
    return chunk_logprobs(
        token_logprobs.detach().double(),
        chunk_index,
        num_chunks=num_chunks,
        token_mask=token_mask,
    )


def chunk_logprobs_in_bits(
    token_logprobs: Tensor, chunk_index: Tensor, num_chunks: int, token_mask: Tensor | None = None
) -> Tensor:
    """Log2-likelihood of each chunk (sum over its scored tokens), in float64.

    Shapes: token_logprobs (B, T) natural log, chunk_index (B, T) -> (B, num_chunks).
    """
    sums = chunk_logprobs_float64(token_logprobs, chunk_index, num_chunks, token_mask)
    return sums.logprobs / math.log(2.0)


def valid_chunk_mask(
    chunk_index: Tensor, num_chunks: int, token_mask: Tensor | None = None
) -> Tensor:
    """Chunks all of whose tokens have a log-prob (not position 0, in `token_mask`), >= 1 token.

    Shapes: chunk_index (B, T), token_mask (B, T) bool or None -> (B, num_chunks) bool.
    """
    no_logprobs = torch.zeros(chunk_index.shape, device=chunk_index.device)
    return chunk_logprobs(
        no_logprobs, chunk_index, num_chunks=num_chunks, token_mask=token_mask
    ).complete


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
