"""Generalised Jensen-Shannon divergence over a shared vocabulary (GKD baseline)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ctd.losses._reduce import kl_divergence, masked_mean, shared_vocab_logprobs


def generalized_jsd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    mask: Tensor | None = None,
    *,
    beta: float = 0.5,
    temperature: float = 1.0,
) -> Tensor:
    """``beta KL(T || M) + (1 - beta) KL(S || M)``, ``M = beta T + (1 - beta) S``, masked mean.

    The limits are the scaled ones used by GKD/TRL: ``beta = 0`` gives forward KL(T || S) and
    ``beta = 1`` reverse KL(S || T).

    Shapes: student_logits (B, T, V), teacher_logits (B, T, V), mask (B, T) -> ().
    Reference: Agarwal et al. 2024, arXiv 2306.13649 (GKD), Eq. generalised JSD.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    student, teacher, mask = shared_vocab_logprobs(
        student_logits, teacher_logits, mask, temperature
    )
    if beta == 0.0:
        return masked_mean(kl_divergence(teacher, student), mask)
    if beta == 1.0:
        return masked_mean(kl_divergence(student, teacher), mask)
    mixture = torch.logaddexp(teacher + math.log(beta), student + math.log(1.0 - beta))  # (B, T, V)
    per_position = beta * kl_divergence(teacher, mixture) + (1 - beta) * kl_divergence(
        student, mixture
    )
    return masked_mean(per_position, mask)


class JSDLoss(nn.Module):
    """Module form of :func:`generalized_jsd_loss`.

    Shapes: see :func:`generalized_jsd_loss`.
    """

    def __init__(self, *, beta: float = 0.5, temperature: float = 1.0) -> None:
        super().__init__()
        self.beta, self.temperature = beta, temperature

    def forward(
        self, student_logits: Tensor, teacher_logits: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        """Compute :func:`generalized_jsd_loss`."""
        return generalized_jsd_loss(
            student_logits, teacher_logits, mask, beta=self.beta, temperature=self.temperature
        )
