"""Masking and reduction shared by the losses."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ctd.losses._checks import check_ndim, check_no_nan, check_same_shape, check_shape


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


Normalizer = Tensor | float | Callable[[Tensor], Tensor]
"""What a loss sum is divided by: a number, or a function of the local count (e.g. a count
summed over data-parallel ranks)."""


def resolve_normalizer(normalizer: Normalizer | None, count: Tensor) -> Tensor | float:
    """The divisor: `max(count, 1)` by default, `normalizer(count)` for a function.

    Shapes: count () -> ().
    """
    if normalizer is None:
        return count.clamp_min(1)
    if callable(normalizer):
        return normalizer(count)
    return normalizer


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over ``mask``; 0 (with zero gradients) when the mask is empty.

    Shapes: values (...), mask (...) bool, same shape -> ().
    """
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp_min(1).to(values.dtype)


def compute_dtype(x: Tensor) -> torch.dtype:
    """Float32 for half-precision inputs, else the input's own floating dtype."""
    return torch.promote_types(x.dtype, torch.float32)


def shared_vocab_logprobs(
    student_logits: Tensor, teacher_logits: Tensor, mask: Tensor | None, temperature: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Validate a same-vocabulary pair; return both log-softmaxes at ``temperature`` and the mask.

    Shapes: student_logits (B, T, V), teacher_logits (B, T, V), mask (B, T) ->
    (B, T, V), (B, T, V), (B, T) bool (default all positions).
    """
    check_ndim("student_logits", student_logits, 3)
    check_same_shape("teacher_logits", teacher_logits, "student_logits", student_logits)
    check_no_nan("student_logits", student_logits)
    check_no_nan("teacher_logits", teacher_logits)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if mask is None:
        mask = torch.ones(student_logits.shape[:2], dtype=torch.bool, device=student_logits.device)
    check_shape("mask", mask, student_logits.shape[:2])
    dtype = compute_dtype(student_logits)
    student = torch.log_softmax(student_logits.to(dtype) / temperature, dim=-1)  # (B, T, V)
    teacher = torch.log_softmax(teacher_logits.to(dtype) / temperature, dim=-1)  # (B, T, V)
    return student, teacher, mask.to(torch.bool)


def kl_divergence(p_logprobs: Tensor, q_logprobs: Tensor) -> Tensor:
    """Per-position KL(p || q) from log-probabilities (0 * log 0 = 0).

    Shapes: (B, T, V), (B, T, V) -> (B, T).
    """
    p = p_logprobs.exp()
    return torch.where(p > 0, p * (p_logprobs - q_logprobs), torch.zeros_like(p)).sum(-1)
