"""ALM: approximate likelihood matching of chunk likelihoods across tokenizers.

Minixhofer, Vulić, Ponti 2025, "(Universal) Cross-Tokenizer Distillation via Approximate
Likelihood Matching", arXiv 2503.20083, Sec. 3.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ctd.losses._checks import (
    check_index_range,
    check_ndim,
    check_no_nan,
    check_same_batch,
    check_same_shape,
)
from ctd.losses._reduce import Normalizer, compute_dtype, resolve_normalizer
from ctd.losses.alm_divergences import ALM_DIVERGENCES
from ctd.losses.chunks import (
    ChunkLogprobs,
    chunk_logprobs,
    gather_chunk_ends,
    infer_num_chunks,
)


def _check_options(divergence: str, temperature: float) -> None:
    if divergence not in ALM_DIVERGENCES:
        raise ValueError(
            f"unknown divergence {divergence!r}; choose from {sorted(ALM_DIVERGENCES)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _side_chunks(
    side: str,
    logprobs: Tensor,
    chunk_index: Tensor,
    space_logprobs: Tensor | None,
    mask: Tensor | None,
    columns: int,
    dtype: torch.dtype,
) -> tuple[ChunkLogprobs, Tensor]:
    """Validate one side; return its chunk log-likelihoods and space log-prob at chunk ends."""
    check_ndim(f"{side}_logprobs", logprobs, 2)
    check_same_shape(f"{side}_chunk_index", chunk_index, f"{side}_logprobs", logprobs)
    check_no_nan(f"{side}_logprobs", logprobs)
    check_index_range(f"{side}_chunk_index", chunk_index, -1, columns)
    if mask is not None:
        check_same_shape(f"{side}_mask", mask, f"{side}_logprobs", logprobs)
    chunks = chunk_logprobs(logprobs.to(dtype), chunk_index, num_chunks=columns, token_mask=mask)
    if space_logprobs is None:
        return chunks, torch.zeros_like(chunks.logprobs)
    check_same_shape(f"{side}_space_logprobs", space_logprobs, f"{side}_logprobs", logprobs)
    check_no_nan(f"{side}_space_logprobs", space_logprobs)
    space = space_logprobs.to(dtype).clamp(max=0.0)  # (B, T)
    return chunks, gather_chunk_ends(space, chunk_index, columns)  # (B, C)


def merge_chunks_by_space_prob(
    student: Tensor,
    teacher: Tensor,
    *,
    student_space: Tensor,
    teacher_space: Tensor,
    valid: Tensor,
    present: Tensor,
    threshold: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Merge each chunk with its successor unless the teacher's space probability > threshold.

    A chunk ends its group when ``exp(teacher_space) > threshold``; the last group of a row is
    kept as it is. A group's log-likelihoods are the sums over its chunks, its space log-probs
    those of its last chunk, and it is valid only if every chunk in it that has tokens is valid.

    Shapes: all (B, C) -> 5 x (B, C) (student, teacher, student_space, teacher_space, valid).
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083, Sec. 3 (tokenkit
    ``merge_by_space_prob``).
    """
    batch, columns = teacher.shape
    closes = (teacher_space.exp() > threshold).long()  # (B, C)
    group = torch.cumsum(closes, dim=1) - closes  # (B, C): exclusive cumsum = group id

    def group_sum(values: Tensor) -> Tensor:
        return values.new_zeros(batch, columns).scatter_add(1, group, values)  # (B, C)

    zero = torch.zeros_like(teacher)
    merged_teacher = group_sum(torch.where(valid, teacher, zero))
    merged_student = group_sum(torch.where(valid, student, zero))
    has_invalid = group_sum((present & ~valid).long()) > 0
    merged_valid = (group_sum(present.long()) > 0) & ~has_invalid
    chunk_ids = torch.arange(columns, device=group.device).expand(batch, columns)
    last = torch.full_like(group, -1).scatter_reduce(
        1, group, torch.where(present, chunk_ids, -1), reduce="amax", include_self=True
    )  # (B, C): last chunk of each group
    index = last.clamp_min(0)
    return (
        merged_student,
        merged_teacher,
        student_space.gather(1, index),
        teacher_space.gather(1, index),
        merged_valid,
    )


def _valid_divergences(
    ell_student: Tensor,
    ell_teacher: Tensor,
    valid: Tensor,
    divergence: str,
    temperature: float,
    epsilon: float,
) -> Tensor:
    """The divergence of every valid chunk, 0 elsewhere (evaluated on safe values there).

    Shapes: (B, C), (B, C), (B, C) bool -> (B, C).
    """
    safe = torch.full_like(ell_student, -1.0)  # keeps masked entries and their gradients finite
    values = ALM_DIVERGENCES[divergence](
        torch.where(valid, ell_student, safe),
        torch.where(valid, ell_teacher, safe),
        temperature,
        epsilon,
    )  # (B, C)
    return torch.where(valid, values, torch.zeros_like(values))


def _check_space_inputs(
    needs_space: bool, student_space_logprobs: Tensor | None, teacher_space_logprobs: Tensor | None
) -> None:
    """Raises ValueError when ``append_space`` / ``merge_by_space_prob`` lack a side's space."""
    if needs_space and (teacher_space_logprobs is None or student_space_logprobs is None):
        raise ValueError("append_space / merge_by_space_prob need *_space_logprobs on both sides")


def _compared_likelihoods(
    student: ChunkLogprobs,
    teacher: ChunkLogprobs,
    student_space: Tensor,
    teacher_space: Tensor,
    *,
    append_space: bool,
    merge_by_space_prob: bool,
    space_prob_threshold: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """The chunk (or merged group) log-likelihoods the divergence compares, and their validity.

    Clamped to <= 0, merged by the teacher's space probability if asked, then with the space
    log-probs added if asked.

    Shapes: chunks and spaces (B, C) -> 3 x (B, C) (student, teacher, valid).
    """
    valid = student.complete & teacher.complete  # (B, C)
    ell_student = student.logprobs.clamp(max=0.0)  # (B, C)
    ell_teacher = teacher.logprobs.clamp(max=0.0)
    if merge_by_space_prob:
        present = (
            student.num_scored + student.num_unscored + teacher.num_scored + teacher.num_unscored
        ) > 0
        ell_student, ell_teacher, student_space, teacher_space, valid = merge_chunks_by_space_prob(
            ell_student,
            ell_teacher,
            student_space=student_space,
            teacher_space=teacher_space,
            valid=valid,
            present=present,
            threshold=space_prob_threshold,
        )
    if append_space:
        ell_student = ell_student + student_space
        ell_teacher = ell_teacher + teacher_space
    return ell_student, ell_teacher, valid


def alm_loss(
    student_logprobs: Tensor,
    teacher_logprobs: Tensor,
    *,
    student_chunk_index: Tensor,
    teacher_chunk_index: Tensor,
    temperature: float = 100.0,
    divergence: str = "binary_ce",
    student_space_logprobs: Tensor | None = None,
    teacher_space_logprobs: Tensor | None = None,
    student_mask: Tensor | None = None,
    teacher_mask: Tensor | None = None,
    append_space: bool = False,
    merge_by_space_prob: bool = False,
    space_prob_threshold: float = 0.1,
    num_chunks: int | None = None,
    normalizer: Normalizer | None = None,
    epsilon: float = 1e-6,
) -> Tensor:
    """ALM loss: binarised divergence between teacher and student chunk likelihoods.

    Chunk log-likelihoods are sums of main-path token log-probs per chunk (scatter-add over the
    sparse chunk index). With ``append_space`` the log-prob that the token after the chunk is
    space-like (``*_space_logprobs``; pass EOS log-probs there for tokenkit's ``eos_as_space``) is
    added on both sides. The loss is the sum of ``divergence`` over valid chunks divided by their
    number (or by ``normalizer``: a number, or a function of the local count of valid chunks,
    e.g. ``ctd.trainers.distributed.global_mean_normalizer`` under data parallelism).

    A chunk is valid iff it has >= 1 scored token on each side and no unscored token on either
    side (scored: ``*_mask``, default all, and never position 0). Deliberate differences from
    tokenkit (bcacdef): (1) tokenkit checks only the teacher's token count, so a student chunk made
    of its unpredicted first token scores ``log p = 0``; (2) its ``merge_by_space_prob``
    applies the merge matrix twice to the normaliser and drops invalid chunks from a group's sum,
    here a group with an invalid chunk is dropped and the normaliser counts valid groups; (3) no
    valid chunk gives 0 with zero gradients, not NaN; (4) divergences are evaluated on safe values
    for invalid chunks, so ``binary_kl_temp_limit`` needs no ``inf - inf`` cancellation;
    (5) an unknown ``divergence`` raises instead of being ignored.

    Everything after the two log-prob tensors is keyword-only: swapping the sides changes the
    (asymmetric) loss without any shape error.

    Shapes: student_* (B, Ts), teacher_* (B, Tt) -> ().
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083, Sec. 3.

    Example:
        One chunk; the student gives it probability 0.5, the teacher 0.25, so at
        ``temperature=1`` the binary cross-entropy is ``-(0.25 ln 0.5 + 0.75 ln 0.5) = ln 2``:

        >>> import math, torch
        >>> student = torch.tensor([[0.0, math.log(0.5)]])  # position 0 has no log-prob
        >>> teacher = torch.tensor([[0.0, math.log(0.5), math.log(0.5)]])
        >>> loss = alm_loss(
        ...     student, teacher,
        ...     student_chunk_index=torch.tensor([[-1, 0]]),
        ...     teacher_chunk_index=torch.tensor([[-1, 0, 0]]),
        ...     temperature=1.0, epsilon=0.0,
        ... )
        >>> round(loss.item(), 4)
        0.6931
    """
    _check_options(divergence, temperature)
    _check_space_inputs(
        append_space or merge_by_space_prob, student_space_logprobs, teacher_space_logprobs
    )
    check_same_batch("student_logprobs", student_logprobs, "teacher_logprobs", teacher_logprobs)
    if num_chunks is None:
        num_chunks = infer_num_chunks(student_chunk_index, teacher_chunk_index)
    columns = max(num_chunks, 1)
    dtype = compute_dtype(student_logprobs)
    student, space_student = _side_chunks(
        "student", student_logprobs, student_chunk_index, student_space_logprobs,
        student_mask, columns, dtype,
    )  # fmt: skip
    teacher, space_teacher = _side_chunks(
        "teacher", teacher_logprobs, teacher_chunk_index, teacher_space_logprobs,
        teacher_mask, columns, dtype,
    )  # fmt: skip
    ell_student, ell_teacher, valid = _compared_likelihoods(
        student, teacher, space_student, space_teacher,
        append_space=append_space, merge_by_space_prob=merge_by_space_prob,
        space_prob_threshold=space_prob_threshold,
    )  # fmt: skip
    values = _valid_divergences(ell_student, ell_teacher, valid, divergence, temperature, epsilon)
    return values.sum() / resolve_normalizer(normalizer, valid.sum().to(dtype))


class ALMLoss(nn.Module):
    """Module form of :func:`alm_loss`; stores the hyperparameters only.

    ``eos_as_space`` (tokenkit's option) is not used by :func:`alm_loss` itself: it tells the
    caller to pass the log-probs of EOS as ``*_space_logprobs`` (the trainer does so), for
    ``append_space`` / ``merge_by_space_prob`` on text without whitespace.

    Shapes: see :func:`alm_loss`.
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083, Sec. 3.
    """

    def __init__(
        self,
        *,
        temperature: float = 100.0,
        divergence: str = "binary_ce",
        append_space: bool = False,
        merge_by_space_prob: bool = False,
        space_prob_threshold: float = 0.1,
        epsilon: float = 1e-6,
        eos_as_space: bool = False,
    ) -> None:
        super().__init__()
        if divergence not in ALM_DIVERGENCES:
            raise ValueError(
                f"unknown divergence {divergence!r}; choose from {sorted(ALM_DIVERGENCES)}"
            )
        self.temperature = temperature
        self.divergence = divergence
        self.append_space = append_space
        self.merge_by_space_prob = merge_by_space_prob
        self.space_prob_threshold = space_prob_threshold
        self.epsilon = epsilon
        self.eos_as_space = eos_as_space

    def forward(
        self,
        student_logprobs: Tensor,
        teacher_logprobs: Tensor,
        *,
        student_chunk_index: Tensor,
        teacher_chunk_index: Tensor,
        student_space_logprobs: Tensor | None = None,
        teacher_space_logprobs: Tensor | None = None,
        student_mask: Tensor | None = None,
        teacher_mask: Tensor | None = None,
        num_chunks: int | None = None,
        normalizer: Normalizer | None = None,
    ) -> Tensor:
        """Compute :func:`alm_loss` with the stored hyperparameters."""
        return alm_loss(
            student_logprobs,
            teacher_logprobs,
            student_chunk_index=student_chunk_index,
            teacher_chunk_index=teacher_chunk_index,
            temperature=self.temperature,
            divergence=self.divergence,
            student_space_logprobs=student_space_logprobs,
            teacher_space_logprobs=teacher_space_logprobs,
            student_mask=student_mask,
            teacher_mask=teacher_mask,
            append_space=self.append_space,
            merge_by_space_prob=self.merge_by_space_prob,
            space_prob_threshold=self.space_prob_threshold,
            num_chunks=num_chunks,
            normalizer=normalizer,
            epsilon=self.epsilon,
        )
