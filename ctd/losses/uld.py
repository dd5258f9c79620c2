"""ULD: universal logit distillation across vocabularies via sorted probabilities (baseline)."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from ctd.losses._checks import check_ndim, check_no_nan, check_same_batch, check_shape
from ctd.losses._reduce import compute_dtype, masked_mean


def _compact(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Move the masked positions of each row to the front, keeping their order.

    Shapes: values (B, T, V), mask (B, T) -> (B, T, V), (B,) counts.
    """
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices  # (B, T)
    gathered = values.gather(1, order.unsqueeze(-1).expand_as(values))  # (B, T, V)
    return gathered, mask.sum(1)


def uld_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    student_mask: Tensor | None = None,
    teacher_mask: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """Mean over paired positions of ``sum_i |p_S(i) - p_T(i)|`` on descending-sorted probabilities.

    The k-th scored student position is paired with the k-th scored teacher position (the ULD
    paper's alignment of response tokens, truncated to the shorter side), so sequence lengths may
    differ; the smaller vocabulary is zero-padded. tokenkit pairs raw position indices and needs
    equal lengths. The cross-entropy term of ULD is left to :func:`~ctd.losses.sft_loss`.
    The masks are keyword-only, so they cannot be swapped by position.

    Shapes: student_logits (B, Ts, Vs), teacher_logits (B, Tt, Vt), student_mask (B, Ts),
    teacher_mask (B, Tt) -> ().
    Reference: Boizard et al. 2024, arXiv 2402.12030 (ULD), Eq. Wasserstein-1 closed form.
    """
    check_ndim("student_logits", student_logits, 3)
    check_ndim("teacher_logits", teacher_logits, 3)
    check_same_batch("student_logits", student_logits, "teacher_logits", teacher_logits)
    check_no_nan("student_logits", student_logits)
    check_no_nan("teacher_logits", teacher_logits)
    masks = []
    for name, logits, mask in (
        ("student_mask", student_logits, student_mask),
        ("teacher_mask", teacher_logits, teacher_mask),
    ):
        if mask is None:
            mask = torch.ones(logits.shape[:2], dtype=torch.bool, device=logits.device)
        check_shape(name, mask, logits.shape[:2])
        masks.append(mask.to(torch.bool))
    dtype = compute_dtype(student_logits)
    student = (
        torch.softmax(student_logits.to(dtype) / temperature, -1).sort(-1, descending=True).values
    )
    teacher = (
        torch.softmax(teacher_logits.to(dtype) / temperature, -1).sort(-1, descending=True).values
    )
    student, student_count = _compact(student, masks[0])  # (B, Ts, Vs)
    teacher, teacher_count = _compact(teacher, masks[1])  # (B, Tt, Vt)
    length, vocab = min(student.shape[1], teacher.shape[1]), max(student.shape[2], teacher.shape[2])
    student = F.pad(student[:, :length], (0, vocab - student.shape[2]))  # (B, L, V)
    teacher = F.pad(teacher[:, :length], (0, vocab - teacher.shape[2]))  # (B, L, V)
    pairs = (
        torch.arange(length, device=student.device)
        < torch.minimum(student_count, teacher_count)[:, None]
    )
    return masked_mean((student - teacher).abs().sum(-1), pairs)


class ULDLoss(nn.Module):
    """Module form of :func:`uld_loss`.

    Shapes: see :func:`uld_loss`.
    """

    def __init__(self, *, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor,
        *,
        student_mask: Tensor | None = None,
        teacher_mask: Tensor | None = None,
    ) -> Tensor:
        """Compute :func:`uld_loss`."""
        return uld_loss(
            student_logits,
            teacher_logits,
            student_mask=student_mask,
            teacher_mask=teacher_mask,
            temperature=self.temperature,
        )
