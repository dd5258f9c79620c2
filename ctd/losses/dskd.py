"""DSKD: dual-space knowledge distillation with cross-model attention (cross-vocab baseline)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from ctd.losses._checks import check_ndim, check_same_batch, check_shape
from ctd.losses._reduce import kl_divergence, masked_mean, scored_token_mask


class DSKDSide(NamedTuple):
    """One model's tensors for :func:`dskd_loss` (position t predicts token t + 1)."""

    logits: Tensor  # (B, T, V)
    hidden: Tensor  # (B, T, d): last hidden state
    input_ids: Tensor  # (B, T)
    input_embeddings: Tensor  # (V, d)
    output_embeddings: Tensor  # (V, d)
    mask: Tensor | None = None  # (B, T) bool: tokens that count as targets


class DSKDProjections(NamedTuple):
    """The trainable projectors of DSKD."""

    query: Callable[[Tensor], Tensor]  # (.., 2 d_student) -> (.., 2 d_teacher)
    teacher_to_student: Callable[[Tensor], Tensor]  # (.., d_teacher) -> (.., d_student)
    student_to_teacher: Callable[[Tensor], Tensor]  # (.., d_student) -> (.., d_teacher)


def _side_views(side: DSKDSide, name: str) -> tuple[Tensor, Tensor, Tensor]:
    """Index embeddings [E(x_t); E(x_t+1)], next-token targets and their mask (t < T - 1)."""
    check_ndim(f"{name}.logits", side.logits, 3)
    check_shape(f"{name}.input_ids", side.input_ids, side.logits.shape[:2])
    check_shape(f"{name}.hidden", side.hidden, (*side.logits.shape[:2], None))
    embeddings = side.input_embeddings[side.input_ids]  # (B, T, d)
    index = torch.cat([embeddings[:, :-1], embeddings[:, 1:]], dim=-1)  # (B, T-1, 2d)
    mask = scored_token_mask(side.input_ids, side.mask, f"{name}.mask")[:, 1:]  # (B, T-1)
    return index, side.input_ids[:, 1:], mask


def _masked_softmax(scores: Tensor, key_mask: Tensor) -> Tensor:
    """Softmax over the last axis restricted to ``key_mask`` (B, K); finite if a row has no key."""
    filled = scores.masked_fill(~key_mask[:, None, :], torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=-1)


def dskd_loss(
    student: DSKDSide,
    teacher: DSKDSide,
    projections: DSKDProjections,
    *,
    kd_temperature: float = 2.0,
) -> Tensor:
    """DSKD: teacher states projected into the student's space (and back) by cross-attention.

    Student queries ``[E_S(x_t); E_S(x_t+1)]`` attend to std-normalised teacher keys
    ``[E_T(y_s); E_T(y_s+1)]``. Teacher values (normalised hidden + target embedding, projected)
    give t2s logits through the student's frozen output embeddings: loss = CE(t2s, student
    targets) + KL(t2s || student) at positions where t2s predicts the target (temperature
    ``kd_temperature``) + KL(teacher || s2t), s2t from student hidden states attended back.
    Only forward KL is offered (tokenkit's default is skewed reverse KL with lambda 0.1).

    Shapes: logits (B, T, V), hidden (B, T, d), input_ids (B, T), embeddings (V, d) per side -> ().
    Reference: Zhang et al. 2024, arXiv 2406.17328 (DSKD); tokenkit ``baseline_dskd``.
    """
    check_same_batch("student.logits", student.logits, "teacher.logits", teacher.logits)
    student_index, student_next, student_mask = _side_views(student, "student")
    teacher_index, _, teacher_mask = _side_views(teacher, "teacher")
    teacher_index = (teacher_index / teacher_index.std()).detach()  # (B, Tt-1, 2dt)
    query = projections.query(student_index)  # (B, Ts-1, 2dt)
    align = (
        query @ teacher_index.transpose(1, 2) / math.sqrt(teacher_index.shape[-1])
    )  # (B, Ts-1, Tt-1)
    teacher_hidden = teacher.hidden[:, :-1].detach()
    teacher_target = teacher.output_embeddings[teacher.input_ids[:, 1:]].detach()
    values = projections.teacher_to_student(
        teacher_hidden / teacher_hidden.std() + teacher_target / teacher_target.std()
    )  # (B, Tt-1, ds)
    t2s_hidden = _masked_softmax(align, teacher_mask) @ values  # (B, Ts-1, ds)
    t2s_logits = t2s_hidden @ student.output_embeddings.detach().T  # (B, Ts-1, Vs)
    ce = F.cross_entropy(t2s_logits.transpose(1, 2), student_next, reduction="none")  # (B, Ts-1)
    correct = (t2s_logits.argmax(-1) == student_next) & student_mask
    tau = kd_temperature
    t2s_logp = torch.log_softmax(t2s_logits.detach() / tau, -1)
    kd = kl_divergence(t2s_logp, torch.log_softmax(student.logits[:, :-1] / tau, -1))  # (B, Ts-1)
    s2t_hidden = _masked_softmax(
        align.transpose(1, 2), student_mask
    ) @ projections.student_to_teacher(student.hidden[:, :-1])  # (B, Tt-1, dt)
    s2t_logits = s2t_hidden @ teacher.output_embeddings.detach().T  # (B, Tt-1, Vt)
    teacher_logp = torch.log_softmax(teacher.logits[:, :-1].detach(), -1)
    s2t_kl = kl_divergence(teacher_logp, torch.log_softmax(s2t_logits, -1))  # (B, Tt-1)
    return (
        masked_mean(ce, student_mask) + masked_mean(kd, correct) + masked_mean(s2t_kl, teacher_mask)
    )


class DSKDLoss(nn.Module):
    """DSKD with its three learned projectors (module form of :func:`dskd_loss`).

    Shapes: see :func:`dskd_loss`.
    Reference: Zhang et al. 2024, arXiv 2406.17328.
    """

    def __init__(self, *, student_dim: int, teacher_dim: int, kd_temperature: float = 2.0) -> None:
        super().__init__()
        self.query = nn.Linear(2 * student_dim, 2 * teacher_dim)
        self.teacher_to_student = nn.Linear(teacher_dim, student_dim)
        self.student_to_teacher = nn.Linear(student_dim, teacher_dim)
        self.kd_temperature = kd_temperature

    def forward(self, student: DSKDSide, teacher: DSKDSide) -> Tensor:
        """Compute :func:`dskd_loss` with this module's projectors."""
        projections = DSKDProjections(self.query, self.teacher_to_student, self.student_to_teacher)
        return dskd_loss(student, teacher, projections, kd_temperature=self.kd_temperature)
