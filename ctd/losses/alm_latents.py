"""ALM latents: match hidden states at aligned chunk ends (tokenkit ``alm_latents``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ctd.losses._checks import check_index_range, check_ndim, check_same_batch
from ctd.losses._reduce import compute_dtype
from ctd.losses.chunks import chunk_last_token, gather_chunk_ends, infer_num_chunks

LATENT_DISTANCES = ("l2", "l2_channelwise", "l1", "l1_channelwise")


def _power(x: Tensor, distance: str) -> Tensor:
    return x.square() if distance.startswith("l2") else x.abs()


def _layer_distance(teacher: Tensor, student: Tensor, valid: Tensor, distance: str) -> Tensor:
    """Normalised distance of one layer pair over valid chunks; the normaliser is detached.

    Shapes: teacher (B, C, d), student (B, C, d), valid (B, C) -> ().
    """
    weights = valid.unsqueeze(-1).to(teacher.dtype)  # (B, C, 1)
    count = valid.sum().clamp_min(1).to(teacher.dtype)
    diff = student - teacher  # (B, C, d)
    scale_per_channel = (_power(teacher.detach(), distance) * weights).sum((0, 1)) / count  # (d,)
    scale = scale_per_channel if distance.endswith("channelwise") else scale_per_channel.mean()
    per_chunk = (_power(diff, distance) / (scale + 1e-8)).mean(-1)  # (B, C)
    return torch.where(valid, per_chunk, torch.zeros_like(per_chunk)).sum() / count


def alm_latents_loss(
    student_hidden_states: Tensor | Sequence[Tensor],
    teacher_hidden_states: Tensor | Sequence[Tensor],
    *,
    student_chunk_index: Tensor,
    teacher_chunk_index: Tensor,
    layer_map: Sequence[tuple[int, int]] = ((-1, -1),),
    projection: Callable[[Tensor], Tensor] | None = None,
    distance: str = "l2_channelwise",
    num_chunks: int | None = None,
) -> Tensor:
    """Normalised distance between teacher and student hidden states at aligned chunk ends.

    A tensor means one layer (the last); a sequence holds all layers and ``layer_map`` lists
    ``(teacher_layer, student_layer)`` pairs (tokenkit's order, kept so configs stay valid),
    averaged. ``projection`` (e.g. a learned
    ``nn.Linear(d_student, d_teacher)``) maps student states when widths differ. A chunk counts
    when it has a token on both sides. The distance is divided by the teacher's mean squared
    (or absolute) activation over valid chunks, per channel for ``*_channelwise`` (detached).

    Everything after the two hidden-state arguments is keyword-only.

    Shapes: hidden states (B, Ts, ds) / (B, Tt, dt) or sequences of them; chunk indices (B, Ts),
    (B, Tt) -> ().
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083 (tokenkit ``alm_latents``).
    """
    if distance not in LATENT_DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; choose from {LATENT_DISTANCES}")
    teachers = (
        [teacher_hidden_states]
        if isinstance(teacher_hidden_states, Tensor)
        else list(teacher_hidden_states)
    )
    students = (
        [student_hidden_states]
        if isinstance(student_hidden_states, Tensor)
        else list(student_hidden_states)
    )
    columns = max(
        num_chunks
        if num_chunks is not None
        else infer_num_chunks(student_chunk_index, teacher_chunk_index),
        1,
    )
    check_index_range("student_chunk_index", student_chunk_index, -1, columns)
    check_index_range("teacher_chunk_index", teacher_chunk_index, -1, columns)
    valid = (chunk_last_token(teacher_chunk_index, columns) >= 0) & (
        chunk_last_token(student_chunk_index, columns) >= 0
    )
    total = torch.zeros((), device=valid.device)
    for teacher_layer, student_layer in layer_map:
        teacher, student = teachers[teacher_layer], students[student_layer]
        check_ndim("teacher_hidden_states", teacher, 3)
        check_ndim("student_hidden_states", student, 3)
        check_same_batch("teacher_hidden_states", teacher, "student_hidden_states", student)
        teacher_ends = gather_chunk_ends(teacher, teacher_chunk_index, columns)  # (B, C, dt)
        student_ends = gather_chunk_ends(student, student_chunk_index, columns)  # (B, C, ds)
        if projection is not None:
            student_ends = projection(student_ends)  # (B, C, dt)
        if student_ends.shape != teacher_ends.shape:
            raise ValueError(
                f"hidden widths differ: teacher_hidden_states {tuple(teacher.shape)}, "
                f"student_hidden_states {tuple(student.shape)}; pass a projection"
            )
        dtype = compute_dtype(student_ends)  # half precision is reduced in float32
        total = total + _layer_distance(
            teacher_ends.to(dtype), student_ends.to(dtype), valid, distance
        )
    return total / len(layer_map)


class ALMLatentsLoss(nn.Module):
    """Module form of :func:`alm_latents_loss`, owning the learned projection if widths differ.

    Shapes: see :func:`alm_latents_loss`.
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083.
    """

    def __init__(
        self,
        *,
        student_dim: int | None = None,
        teacher_dim: int | None = None,
        layer_map: Sequence[tuple[int, int]] = ((-1, -1),),
        distance: str = "l2_channelwise",
    ) -> None:
        super().__init__()
        if distance not in LATENT_DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; choose from {LATENT_DISTANCES}")
        self.layer_map = [tuple(pair) for pair in layer_map]
        self.distance = distance
        needs_projection = (
            student_dim is not None and teacher_dim is not None and student_dim != teacher_dim
        )
        self.projection = nn.Linear(student_dim, teacher_dim) if needs_projection else None  # type: ignore[arg-type]

    def forward(
        self,
        student_hidden_states: Tensor | Sequence[Tensor],
        teacher_hidden_states: Tensor | Sequence[Tensor],
        *,
        student_chunk_index: Tensor,
        teacher_chunk_index: Tensor,
        num_chunks: int | None = None,
    ) -> Tensor:
        """Compute :func:`alm_latents_loss` with the stored options and projection."""
        return alm_latents_loss(
            student_hidden_states,
            teacher_hidden_states,
            student_chunk_index=student_chunk_index,
            teacher_chunk_index=teacher_chunk_index,
            layer_map=self.layer_map,  # type: ignore[arg-type]
            projection=self.projection,
            distance=self.distance,
            num_chunks=num_chunks,
        )
