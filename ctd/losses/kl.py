"""Forward and reverse KL distillation over a shared vocabulary (baselines)."""

from __future__ import annotations

from torch import Tensor

from ctd.losses._modules import SharedVocabLoss
from ctd.losses._reduce import kl_divergence, masked_mean, shared_vocab_logprobs


def forward_kl_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    mask: Tensor | None = None,
    *,
    temperature: float = 1.0,
) -> Tensor:
    """Masked mean over positions of KL(p_teacher || p_student).

    Shapes: student_logits (B, T, V), teacher_logits (B, T, V), mask (B, T) -> ().
    Reference: Hinton et al. 2015, arXiv 1503.02531 (knowledge distillation).

    Example:
        Teacher (0.5, 0.5) against student (0.25, 0.75): ``0.5 ln 2 + 0.5 ln(2/3) = 0.1438``.

        >>> import math, torch
        >>> student = torch.tensor([[[math.log(0.25), math.log(0.75)]]])  # (1, 1, 2)
        >>> teacher = torch.zeros(1, 1, 2)
        >>> round(forward_kl_loss(student, teacher).item(), 4)
        0.1438
        >>> forward_kl_loss(student, teacher, torch.tensor([[False]])).item()  # nothing scored
        0.0
    """
    student, teacher, mask = shared_vocab_logprobs(
        student_logits, teacher_logits, mask, temperature
    )
    return masked_mean(kl_divergence(teacher, student), mask)


def reverse_kl_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    mask: Tensor | None = None,
    *,
    temperature: float = 1.0,
) -> Tensor:
    """Masked mean over positions of KL(p_student || p_teacher).

    Shapes: student_logits (B, T, V), teacher_logits (B, T, V), mask (B, T) -> ().
    Reference: Gu et al. 2024, arXiv 2306.08543 (MiniLLM, reverse KL).
    """
    student, teacher, mask = shared_vocab_logprobs(
        student_logits, teacher_logits, mask, temperature
    )
    return masked_mean(kl_divergence(student, teacher), mask)


class KLLoss(SharedVocabLoss):
    """Module form of :func:`forward_kl_loss`.

    Shapes: see :func:`forward_kl_loss`.
    """

    loss_fn = staticmethod(forward_kl_loss)


class ReverseKLLoss(SharedVocabLoss):
    """Module form of :func:`reverse_kl_loss`.

    Shapes: see :func:`reverse_kl_loss`.
    """

    loss_fn = staticmethod(reverse_kl_loss)
