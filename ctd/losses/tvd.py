"""Total-variation distance over a shared vocabulary (baseline; TVD++'s plain counterpart)."""

from __future__ import annotations

from torch import Tensor

from ctd.losses._modules import SharedVocabLoss
from ctd.losses._reduce import masked_mean, shared_vocab_logprobs


def tvd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    mask: Tensor | None = None,
    *,
    temperature: float = 1.0,
) -> Tensor:
    """Masked mean over positions of ``0.5 * sum_v |p_teacher(v) - p_student(v)|``.

    Shapes: student_logits (B, T, V), teacher_logits (B, T, V), mask (B, T) -> ().
    Reference: Goel et al. 2024, arXiv 2403.00858 (TVD baseline of TVD++).
    """
    student, teacher, mask = shared_vocab_logprobs(
        student_logits, teacher_logits, mask, temperature
    )
    return masked_mean(0.5 * (teacher.exp() - student.exp()).abs().sum(-1), mask)


class TVDLoss(SharedVocabLoss):
    """Module form of :func:`tvd_loss`.

    Shapes: see :func:`tvd_loss`.
    """

    loss_fn = staticmethod(tvd_loss)
