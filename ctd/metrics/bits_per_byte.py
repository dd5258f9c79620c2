"""Bits per byte of a language model on the bytes of its fully scored chunks."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric

from ctd.metrics._chunks import chunk_logprobs_float64


def bits_per_byte_sums(
    token_logprobs: Tensor,
    chunk_index: Tensor,
    chunk_num_bytes: Tensor,
    token_mask: Tensor | None = None,
    chunk_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Negative log2-likelihood and byte count of the valid chunks of a batch.

    A chunk is valid when every one of its tokens has a log-prob (position 0 has none, nor
    has a token outside `token_mask`), it has bytes, and `chunk_mask` allows it.

    Shapes: token_logprobs (B, T), chunk_index (B, T) long (-1: no chunk), chunk_num_bytes
        (B, C), token_mask (B, T) bool, chunk_mask (B, C) bool -> (), () float64 and long.
    """
    num_chunks = chunk_num_bytes.shape[1]
    chunks = chunk_logprobs_float64(token_logprobs, chunk_index, num_chunks, token_mask)
    valid = chunks.complete & (chunk_num_bytes > 0)
    if chunk_mask is not None:
        valid &= chunk_mask.bool()
    nll_bits = -torch.where(valid, chunks.logprobs, 0.0).sum() / math.log(2.0)
    num_bytes = torch.where(valid, chunk_num_bytes, 0).sum().long()
    return nll_bits, num_bytes


def bits_per_byte(
    token_logprobs: Tensor,
    chunk_index: Tensor,
    chunk_num_bytes: Tensor,
    token_mask: Tensor | None = None,
    chunk_mask: Tensor | None = None,
) -> Tensor:
    """Bits per byte of one batch (NaN when no chunk is valid); see `bits_per_byte_sums`.

    Shapes: token_logprobs (B, T), chunk_index (B, T), chunk_num_bytes (B, C) -> () float64.

    Examples:
        >>> logprobs = torch.tensor([[0.0, -0.6931, -1.3863]])  # position 0 is never scored
        >>> chunk_index = torch.tensor([[-1, 0, 1]])
        >>> round(bits_per_byte(logprobs, chunk_index, torch.tensor([[1, 2]])).item(), 3)
        1.0
    """
    nll_bits, num_bytes = bits_per_byte_sums(
        token_logprobs, chunk_index, chunk_num_bytes, token_mask, chunk_mask
    )
    return nll_bits / num_bytes


class BitsPerByte(Metric):
    """Bits per byte over the valid chunks of all updates (and of all processes).

    Pass each model's own chunk index and the batch's `chunk_num_bytes`. To score teacher and
    student on exactly the same bytes, give both the same `chunk_mask`, e.g.
    `joint_valid_chunk_mask(...)` from `ctd.metrics`.

    Shapes: update(token_logprobs (B, T), chunk_index (B, T), chunk_num_bytes (B, C),
        token_mask (B, T) | None, chunk_mask (B, C) | None); compute() -> () float64.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    nll_bits: Tensor
    num_bytes: Tensor

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state("nll_bits", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_bytes", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self,
        token_logprobs: Tensor,
        chunk_index: Tensor,
        chunk_num_bytes: Tensor,
        token_mask: Tensor | None = None,
        chunk_mask: Tensor | None = None,
    ) -> None:
        """Add the valid chunks of one batch (see `bits_per_byte_sums`)."""
        nll_bits, num_bytes = bits_per_byte_sums(
            token_logprobs, chunk_index, chunk_num_bytes, token_mask, chunk_mask
        )
        self.nll_bits += nll_bits
        self.num_bytes += num_bytes

    def compute(self) -> Tensor:
        """Bits per byte so far (NaN before any valid chunk)."""
        return self.nll_bits / self.num_bytes
