"""How closely a student's chunk likelihoods follow the teacher's, for monitoring distillation.

Both models score the same chunks (same bytes, different tokens). On the chunks valid on both
sides, with `d = log2 p_student(chunk) - log2 p_teacher(chunk)`, `compute()` returns:

* `mean_abs_diff_bits`: mean |d| per chunk (0 when the student matches the teacher exactly);
* `abs_diff_bits_per_byte`: sum |d| / bytes, on the same scale as bits per byte;
* `within_one_bit`: fraction of chunks with |d| < 1 bit (likelihood ratio within 2x);
* `pearson`: correlation of the two models' chunk log-likelihoods (NaN if either is constant).
  Long chunks have larger log-likelihoods, so this is high even early; watch the others.

Log it with `self.log_dict(metric.compute())` at the end of validation (not `self.log`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from ctd.metrics._chunks import chunk_logprobs_in_bits, joint_valid_chunk_mask

_SUM_STATES = (
    "num_bytes",
    "num_chunks",
    "num_within_one_bit",
    "sum_abs_diff_bits",
    "sum_teacher",
    "sum_student",
    "sum_teacher_sq",
    "sum_student_sq",
    "sum_teacher_student",
)


class ChunkAgreement(Metric):
    """Agreement of teacher and student chunk log-likelihoods (see the module docstring).

    Shapes: update(teacher_token_logprobs (B, Tt), student_token_logprobs (B, Ts),
        teacher_chunk_index (B, Tt), student_chunk_index (B, Ts), chunk_num_bytes (B, C),
        teacher_token_mask (B, Tt) | None, student_token_mask (B, Ts) | None);
        compute() -> dict of () float64 tensors.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        for name in _SUM_STATES:
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        teacher_token_logprobs: Tensor,
        student_token_logprobs: Tensor,
        teacher_chunk_index: Tensor,
        student_chunk_index: Tensor,
        chunk_num_bytes: Tensor,
        teacher_token_mask: Tensor | None = None,
        student_token_mask: Tensor | None = None,
    ) -> None:
        """Add the chunks of one batch that are valid on both sides."""
        num_chunks = chunk_num_bytes.shape[1]
        valid = joint_valid_chunk_mask(
            teacher_chunk_index,
            student_chunk_index,
            chunk_num_bytes,
            teacher_token_mask,
            student_token_mask,
        )
        teacher = chunk_logprobs_in_bits(
            teacher_token_logprobs, teacher_chunk_index, num_chunks, teacher_token_mask
        )[valid]
        student = chunk_logprobs_in_bits(
            student_token_logprobs, student_chunk_index, num_chunks, student_token_mask
        )[valid]
        abs_diff_bits = (student - teacher).abs()
        sums = {
            "num_bytes": chunk_num_bytes[valid].sum(),
            "num_chunks": torch.tensor(float(teacher.numel())),
            "num_within_one_bit": (abs_diff_bits < 1.0).sum(),
            "sum_abs_diff_bits": abs_diff_bits.sum(),
            "sum_teacher": teacher.sum(),
            "sum_student": student.sum(),
            "sum_teacher_sq": (teacher * teacher).sum(),
            "sum_student_sq": (student * student).sum(),
            "sum_teacher_student": (teacher * student).sum(),
        }
        for name, value in sums.items():
            setattr(self, name, getattr(self, name) + value.to(torch.float64))

    def compute(self) -> dict[str, Tensor]:
        """The four agreement numbers (NaN before any valid chunk)."""
        state = {name: getattr(self, name) for name in _SUM_STATES}
        count = state["num_chunks"]
        covariance = (
            state["sum_teacher_student"] - state["sum_teacher"] * state["sum_student"] / count
        )
        teacher_var = state["sum_teacher_sq"] - state["sum_teacher"] ** 2 / count
        student_var = state["sum_student_sq"] - state["sum_student"] ** 2 / count
        return {
            "mean_abs_diff_bits": state["sum_abs_diff_bits"] / count,
            "abs_diff_bits_per_byte": state["sum_abs_diff_bits"] / state["num_bytes"],
            "within_one_bit": state["num_within_one_bit"] / count,
            "pearson": covariance / (teacher_var * student_var).sqrt(),
        }
