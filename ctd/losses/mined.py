"""MinED: KL on 1:1-aligned tokens through a min-edit-distance vocabulary map, CE elsewhere."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ctd.losses._checks import check_index_range, check_ndim, check_same_batch, check_shape
from ctd.losses._reduce import kl_divergence, scored_token_mask
from ctd.losses.chunks import chunk_last_token, chunk_logprobs, infer_num_chunks
from ctd.losses.token_logprobs import token_logprobs


def mined_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    student_input_ids: Tensor,
    student_chunk_index: Tensor,
    teacher_chunk_index: Tensor,
    student_to_teacher: Tensor,
    student_mask: Tensor | None = None,
    teacher_mask: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """MinED baseline: forward KL on tokens that form a 1:1 chunk, cross-entropy on the rest.

    For a chunk with exactly one (scored) token on each side, the teacher distribution that
    predicts its token, re-indexed to the student vocabulary by ``student_to_teacher`` (each
    student id -> its closest teacher id by edit distance, computed offline), is distilled into
    the student distribution that predicts its token. Every other scored student token gets
    cross-entropy. The sum is divided by the number of terms. Differences from tokenkit: both
    distributions predict the aligned token itself (tokenkit reads them at the chunk end, i.e.
    for the *next* token), and its operator-precedence bug in the 1:1 mask is not reproduced.
    Everything after the two logits is keyword-only (the indices and masks of the two sides
    have the same dtype, so a positional swap would go unnoticed).

    Shapes: student_logits (B, Ts, Vs), teacher_logits (B, Tt, Vt), student_input_ids (B, Ts),
    chunk indices (B, Ts) / (B, Tt), student_to_teacher (Vs,) -> ().
    Reference: Wan et al. 2024, arXiv 2401.10491 (FuseLLM, MinED alignment).
    """
    check_ndim("student_logits", student_logits, 3)
    check_ndim("teacher_logits", teacher_logits, 3)
    check_same_batch("student_logits", student_logits, "teacher_logits", teacher_logits)
    check_shape("student_to_teacher", student_to_teacher, (student_logits.shape[-1],))
    check_index_range("student_to_teacher", student_to_teacher, 0, teacher_logits.shape[-1])
    check_shape("teacher_chunk_index", teacher_chunk_index, teacher_logits.shape[:2])
    columns = max(infer_num_chunks(student_chunk_index, teacher_chunk_index), 1)
    student_lp = token_logprobs(student_logits, student_input_ids)  # (B, Ts)
    teacher_dummy = torch.zeros(
        teacher_logits.shape[:2], dtype=student_lp.dtype, device=student_lp.device
    )
    student_chunks = chunk_logprobs(
        student_lp, student_chunk_index, num_chunks=columns, token_mask=student_mask
    )
    teacher_chunks = chunk_logprobs(
        teacher_dummy, teacher_chunk_index, num_chunks=columns, token_mask=teacher_mask
    )
    one_to_one = (student_chunks.num_scored == 1) & (teacher_chunks.num_scored == 1)
    one_to_one &= (student_chunks.num_unscored == 0) & (teacher_chunks.num_unscored == 0)  # (B, C)
    student_pos = chunk_last_token(student_chunk_index, columns).clamp_min(1) - 1  # predicting pos
    teacher_pos = chunk_last_token(teacher_chunk_index, columns).clamp_min(1) - 1
    batch = torch.arange(student_logits.shape[0], device=student_logits.device)[:, None]
    student_dist = torch.log_softmax(
        student_logits[batch, student_pos] / temperature, -1
    )  # (B, C, Vs)
    teacher_mapped = teacher_logits[batch, teacher_pos][..., student_to_teacher]  # (B, C, Vs)
    teacher_dist = torch.log_softmax(teacher_mapped / temperature, -1)
    kl = kl_divergence(teacher_dist, student_dist)  # (B, C)
    kl_total = torch.where(one_to_one, kl, torch.zeros_like(kl)).sum()
    scored = scored_token_mask(student_lp, student_mask)  # (B, Ts)
    in_one_to_one = one_to_one.gather(1, student_chunk_index.clamp_min(0)) & (
        student_chunk_index >= 0
    )
    ce_mask = scored & ~in_one_to_one
    ce_total = torch.where(ce_mask, -student_lp, torch.zeros_like(student_lp)).sum()
    terms = (one_to_one.sum() + ce_mask.sum()).clamp_min(1)
    return (kl_total + ce_total) / terms.to(student_lp.dtype)


class MinEDLoss(nn.Module):
    """Module form of :func:`mined_loss`, optionally holding the vocabulary map.

    ``student_to_teacher`` given here (built once at set-up) is kept as a non-persistent buffer,
    so it follows ``.to(device)`` but stays out of checkpoints; ``forward``'s own
    ``student_to_teacher``, when passed, takes precedence.

    Shapes: see :func:`mined_loss`.
    """

    student_to_teacher: Tensor | None

    def __init__(
        self, *, temperature: float = 1.0, student_to_teacher: Tensor | None = None
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.register_buffer("student_to_teacher", student_to_teacher, persistent=False)

    def forward(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor,
        *,
        student_input_ids: Tensor,
        student_chunk_index: Tensor,
        teacher_chunk_index: Tensor,
        student_to_teacher: Tensor | None = None,
        student_mask: Tensor | None = None,
        teacher_mask: Tensor | None = None,
    ) -> Tensor:
        """Compute :func:`mined_loss` with the given map, else the one given at construction."""
        mapping = self.student_to_teacher if student_to_teacher is None else student_to_teacher
        if mapping is None:
            raise ValueError(
                "MinEDLoss needs a student_to_teacher vocabulary map (student id -> teacher id): "
                "pass it to MinEDLoss(student_to_teacher=...) or to forward"
            )
        return mined_loss(
            student_logits,
            teacher_logits,
            student_input_ids=student_input_ids,
            student_chunk_index=student_chunk_index,
            teacher_chunk_index=teacher_chunk_index,
            student_to_teacher=mapping,
            student_mask=student_mask,
            teacher_mask=teacher_mask,
            temperature=self.temperature,
        )
