"""Multi-teacher ALM: one student, K teachers of different tokenizers, on K-way chunks.

The chunks come from a K-way alignment (`ctd.alignment.align_many`: every teacher and the
student tile each chunk), so every teacher has a likelihood for every chunk. Two ways to use
them, chosen by ``combine``:

* ``ensemble``: one teacher, the mixture. A chunk's teacher log-likelihood is the log of the
  weighted mean of the teachers' chunk probabilities, ``log sum_k w_k p_k(chunk)`` =
  ``logsumexp_k(log w_k + l_k)`` with ``w`` normalised to sum 1, and ALM matches the student to
  it. A chunk counts iff it is valid on the student and on every teacher.
* ``sum``: ``sum_k w_k ALM(student, teacher_k)``, each term the single-teacher ALM loss on the
  same K-way chunks (its own valid chunks and normaliser), ``w`` normalised to sum 1.

Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083 (ALM, Sec. 3; their ensembles mix
probabilities of models moved to one tokenizer, Sec. 5); here the mixture is taken per chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ctd.losses._reduce import compute_dtype
from ctd.losses.alm import ALMLoss, _check_options, _side_chunks, _valid_divergences, alm_loss
from ctd.losses.chunks import infer_num_chunks

__all__ = [
    "MULTI_TEACHER_COMBINES",
    "MultiTeacherALMLoss",
    "ensemble_chunk_logprobs",
    "multi_teacher_alm_loss",
    "normalized_teacher_weights",
]

MULTI_TEACHER_COMBINES = ("ensemble", "sum")
ENSEMBLE_MERGE_ERROR = (
    "merge_by_space_prob is not defined for the ensemble teacher (combine=ensemble): merging "
    "follows one teacher's space probabilities; use append_space, or combine=sum"
)


def check_combine(combine: str) -> None:
    """Raises ValueError naming the allowed values for an unknown ``combine``."""
    if combine not in MULTI_TEACHER_COMBINES:
        allowed = ", ".join(MULTI_TEACHER_COMBINES)
        raise ValueError(f"combine must be one of {allowed}, got {combine!r}")


def normalized_teacher_weights(weights: Sequence[float] | None, num_teachers: int) -> list[float]:
    """Weights summing to 1 (None or empty: equal weights).

    Raises:
        ValueError: no teacher, a count that is not `num_teachers`, a negative or non-finite
            weight, or weights that do not sum to a positive number.
    """
    if num_teachers < 1:
        raise ValueError("multi-teacher ALM needs at least one teacher")
    if not weights:
        return [1.0 / num_teachers] * num_teachers
    values = [float(weight) for weight in weights]
    if len(values) != num_teachers:
        raise ValueError(f"teacher_weights has {len(values)} entries for {num_teachers} teachers")
    if any(not math.isfinite(weight) or weight < 0 for weight in values):
        raise ValueError(f"teacher_weights must be finite and >= 0, got {values}")
    total = sum(values)
    if total <= 0:
        raise ValueError(f"teacher_weights must sum to a positive number, got {values}")
    return [weight / total for weight in values]


def ensemble_chunk_logprobs(teacher_chunk_logprobs: Tensor, weights: Tensor) -> Tensor:
    """Log of the weighted mean of the teachers' chunk probabilities.

    ``logsumexp_k(log w_k + l_k)`` for weights summing to 1; a teacher of weight 0 drops out.

    Shapes: teacher_chunk_logprobs (K, B, C), weights (K,) -> (B, C).
    """
    log_weights = torch.log(weights.to(teacher_chunk_logprobs.dtype))  # (K,), -inf for 0
    return torch.logsumexp(teacher_chunk_logprobs + log_weights[:, None, None], dim=0)


def _optional(values: Sequence[Tensor | None] | None, count: int, name: str) -> list[Any]:
    if values is None:
        return [None] * count
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} entries for {count} teachers")
    return list(values)


def multi_teacher_alm_loss(
    student_logprobs: Tensor,
    teacher_logprobs: Sequence[Tensor],
    *,
    student_chunk_index: Tensor,
    teacher_chunk_index: Sequence[Tensor],
    teacher_weights: Sequence[float] | None = None,
    combine: str = "ensemble",
    temperature: float = 100.0,
    divergence: str = "binary_ce",
    student_space_logprobs: Tensor | None = None,
    teacher_space_logprobs: Sequence[Tensor | None] | None = None,
    student_mask: Tensor | None = None,
    teacher_mask: Sequence[Tensor | None] | None = None,
    append_space: bool = False,
    merge_by_space_prob: bool = False,
    space_prob_threshold: float = 0.1,
    num_chunks: int | None = None,
    epsilon: float = 1e-6,
) -> Tensor:
    """ALM from K teachers on shared chunks: the ensemble teacher, or a weighted sum of losses.

    Arguments are those of :func:`ctd.losses.alm_loss`, with one teacher tensor (or None) per
    teacher in each ``teacher_*`` sequence. With ``append_space`` the ensemble mixes each
    teacher's chunk-then-space probability, ``logsumexp_k(log w_k + l_k + s_k)``.

    Shapes: student_* (B, Ts); teacher_*[k] (B, T_k) -> ().
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083, Sec. 3.

    Raises:
        ValueError: an unknown ``combine``, bad weights, sequences of different lengths, or
            ``merge_by_space_prob`` with ``combine="ensemble"`` (merging needs one teacher's
            space probabilities).
    """
    check_combine(combine)
    _check_options(divergence, temperature)
    weights = normalized_teacher_weights(teacher_weights, len(teacher_logprobs))
    teachers = _teacher_inputs(
        teacher_logprobs, teacher_chunk_index, teacher_space_logprobs, teacher_mask
    )
    if num_chunks is None:
        num_chunks = infer_num_chunks(student_chunk_index, *teacher_chunk_index)
    options: dict[str, Any] = {
        "temperature": temperature, "divergence": divergence, "epsilon": epsilon,
        "student_space_logprobs": student_space_logprobs, "student_mask": student_mask,
        "append_space": append_space, "num_chunks": num_chunks,
    }  # fmt: skip
    if combine == "sum":
        return _weighted_alm_sum(
            student_logprobs, teachers, weights, student_chunk_index=student_chunk_index,
            merge_by_space_prob=merge_by_space_prob, space_prob_threshold=space_prob_threshold,
            **options,
        )  # fmt: skip
    if merge_by_space_prob:
        raise ValueError(ENSEMBLE_MERGE_ERROR)
    return _ensemble_alm(student_logprobs, student_chunk_index, teachers, weights, options)


class _TeacherInputs(NamedTuple):
    """One teacher's arguments of :func:`multi_teacher_alm_loss`. Shapes: (B, T_k) each."""

    logprobs: Tensor
    chunk_index: Tensor
    space_logprobs: Tensor | None
    mask: Tensor | None


def _teacher_inputs(
    teacher_logprobs: Sequence[Tensor],
    teacher_chunk_index: Sequence[Tensor],
    teacher_space_logprobs: Sequence[Tensor | None] | None,
    teacher_mask: Sequence[Tensor | None] | None,
) -> list[_TeacherInputs]:
    """The per-teacher sequences, one entry per teacher; ValueError if their lengths differ."""
    count = len(teacher_logprobs)
    if len(teacher_chunk_index) != count:
        raise ValueError(
            f"teacher_chunk_index has {len(teacher_chunk_index)} entries for {count} teachers"
        )
    spaces = _optional(teacher_space_logprobs, count, "teacher_space_logprobs")
    masks = _optional(teacher_mask, count, "teacher_mask")
    return [
        _TeacherInputs(*inputs)
        for inputs in zip(teacher_logprobs, teacher_chunk_index, spaces, masks, strict=True)
    ]


def _weighted_alm_sum(
    student_logprobs: Tensor,
    teachers: Sequence[_TeacherInputs],
    weights: Sequence[float],
    **options: Any,
) -> Tensor:
    """``sum_k w_k alm_loss(student, teacher_k, **options)`` on the shared chunks. Shapes: -> ()."""
    terms = [
        weight
        * alm_loss(
            student_logprobs,
            teacher.logprobs,
            teacher_chunk_index=teacher.chunk_index,
            teacher_space_logprobs=teacher.space_logprobs,
            teacher_mask=teacher.mask,
            **options,
        )
        for weight, teacher in zip(weights, teachers, strict=True)
    ]
    return torch.stack(terms).sum()


def _ensemble_alm(
    student_logprobs: Tensor,
    student_chunk_index: Tensor,
    teachers: Sequence[_TeacherInputs],
    weights: Sequence[float],
    options: dict[str, Any],
) -> Tensor:
    """ALM of the student against the per-chunk mixture of the teachers. Shapes: -> ()."""
    append_space = options["append_space"]
    no_space = any(teacher.space_logprobs is None for teacher in teachers)
    if append_space and (options["student_space_logprobs"] is None or no_space):
        raise ValueError("append_space needs *_space_logprobs for the student and every teacher")
    columns = max(int(options["num_chunks"]), 1)
    dtype = compute_dtype(student_logprobs)
    student, student_space = _side_chunks(
        "student", student_logprobs, student_chunk_index, options["student_space_logprobs"],
        options["student_mask"], columns, dtype,
    )  # fmt: skip
    valid = student.complete  # (B, C)
    teacher_ells = []
    for k, teacher_inputs in enumerate(teachers):
        teacher, teacher_space = _side_chunks(f"teacher {k}", *teacher_inputs, columns, dtype)
        valid = valid & teacher.complete
        ell = teacher.logprobs.clamp(max=0.0)  # (B, C)
        teacher_ells.append(ell + teacher_space if append_space else ell)
    ell_teacher = ensemble_chunk_logprobs(
        torch.stack(teacher_ells), torch.tensor(weights, device=student_logprobs.device)
    )  # (B, C)
    ell_student = student.logprobs.clamp(max=0.0)
    if append_space:
        ell_student = ell_student + student_space
    values = _valid_divergences(
        ell_student, ell_teacher, valid, options["divergence"], options["temperature"],
        options["epsilon"],
    )  # fmt: skip
    return values.sum() / valid.sum().clamp_min(1).to(dtype)


class MultiTeacherALMLoss(nn.Module):
    """Module form of :func:`multi_teacher_alm_loss`; stores the hyperparameters only.

    Args:
        combine: "ensemble" (the chunk-level mixture teacher) or "sum" (weighted ALM losses).
        teacher_weights: one weight per teacher (normalised to sum 1); None: equal.
        **alm_options: `ALMLoss` hyperparameters (temperature, divergence, append_space,
            merge_by_space_prob, space_prob_threshold, epsilon, eos_as_space).

    Shapes: see :func:`multi_teacher_alm_loss`.
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083, Sec. 3.
    """

    def __init__(
        self,
        *,
        combine: str = "ensemble",
        teacher_weights: Sequence[float] | None = None,
        **alm_options: Any,
    ) -> None:
        super().__init__()
        check_combine(combine)
        self.alm = ALMLoss(**alm_options)
        self.combine = combine
        self.teacher_weights = list(teacher_weights) if teacher_weights else None
        if combine == "ensemble" and self.alm.merge_by_space_prob:
            raise ValueError(ENSEMBLE_MERGE_ERROR)

    @property
    def eos_as_space(self) -> bool:
        """Whether the caller passes EOS log-probs as the space log-probs (`ALMLoss`)."""
        return bool(self.alm.eos_as_space)

    def forward(
        self,
        student_logprobs: Tensor,
        teacher_logprobs: Sequence[Tensor],
        *,
        student_chunk_index: Tensor,
        teacher_chunk_index: Sequence[Tensor],
        student_space_logprobs: Tensor | None = None,
        teacher_space_logprobs: Sequence[Tensor | None] | None = None,
        student_mask: Tensor | None = None,
        teacher_mask: Sequence[Tensor | None] | None = None,
        num_chunks: int | None = None,
    ) -> Tensor:
        """Compute :func:`multi_teacher_alm_loss` with the stored hyperparameters."""
        alm = self.alm
        return multi_teacher_alm_loss(
            student_logprobs,
            teacher_logprobs,
            student_chunk_index=student_chunk_index,
            teacher_chunk_index=teacher_chunk_index,
            teacher_weights=self.teacher_weights,
            combine=self.combine,
            temperature=alm.temperature,
            divergence=alm.divergence,
            student_space_logprobs=student_space_logprobs,
            teacher_space_logprobs=teacher_space_logprobs,
            student_mask=student_mask,
            teacher_mask=teacher_mask,
            append_space=alm.append_space,
            merge_by_space_prob=alm.merge_by_space_prob,
            space_prob_threshold=alm.space_prob_threshold,
            num_chunks=num_chunks,
            epsilon=alm.epsilon,
        )
