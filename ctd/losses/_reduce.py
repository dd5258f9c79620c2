"""Masking and reduction shared by the losses."""

from __future__ import annotations

import torch
from torch import Tensor

from ctd.losses._checks import check_same_shape


def scored_token_mask(logprobs: Tensor, mask: Tensor | None, name: str = "mask") -> Tensor:
    """Bool mask of tokens that carry a log-prob: ``mask`` (default all) without position 0.

    Shapes: logprobs (B, T), mask (B, T) -> (B, T).
    """
    if mask is None:
        out = torch.ones(logprobs.shape, dtype=torch.bool, device=logprobs.device)
    else:
        check_same_shape(name, mask, "logprobs", logprobs)
        out = mask.to(torch.bool).clone()
    out[:, :1] = False
    return out


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over ``mask``; 0 (with zero gradients) when the mask is empty.

    Shapes: values (...), mask (...) bool, same shape -> ().
    """
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp_min(1).to(values.dtype)


def compute_dtype(x: Tensor) -> torch.dtype:
    """Float32 for half-precision inputs, else the input's own floating dtype."""
    return torch.promote_types(x.dtype, torch.float32)
