"""ULD: universal logit distillation across vocabularies via sorted probabilities (baseline)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ctd.losses._checks import check_ndim, check_no_nan, check_same_batch, check_shape
from ctd.losses._reduce import compute_dtype, masked_mean


def _compact(values: Tensor, mask: Tensor) -> Tensor:
    """Move the masked positions of each row to the front, keeping their order.

    Returns `values` itself (no copy) when every position is scored.
    Shapes: values (B, T, V), mask (B, T) -> (B, T, V).
    """
    if bool(mask.all()):
        return values
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices  # (B, T)
    return values.gather(1, order.unsqueeze(-1).expand_as(values))  # (B, T, V)


def _sorted_probs(logits: Tensor, mask: Tensor, length: int, temperature: float) -> Tensor:
    """Descending-sorted probabilities of the first `length` scored positions of each row.

    Positions are compacted and cut before the softmax and the sort, which act per position.
    Shapes: logits (B, T, V), mask (B, T) -> (B, length, V).
    """
    scaled = _compact(logits, mask)[:, :length].to(compute_dtype(logits)) / temperature
    return torch.softmax(scaled, -1).sort(-1, descending=True).values


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
    student_count, teacher_count = masks[0].sum(1), masks[1].sum(1)
    length = min(student_logits.shape[1], teacher_logits.shape[1])
    student = _sorted_probs(student_logits, masks[0], length, temperature)  # (B, L, Vs)
    teacher = _sorted_probs(teacher_logits, masks[1], length, temperature)  # (B, L, Vt)
    # The smaller vocabulary is zero-padded: past it, |p - 0| = p, so its tail adds its sum.
    shared = min(student.shape[2], teacher.shape[2])
    distance = (student[..., :shared] - teacher[..., :shared]).abs().sum(-1)  # (B, L)
    distance = distance + student[..., shared:].sum(-1) + teacher[..., shared:].sum(-1)
    pairs = (
        torch.arange(length, device=student.device)
        < torch.minimum(student_count, teacher_count)[:, None]
    )
    return masked_mean(distance, pairs)


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
