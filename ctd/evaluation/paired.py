"""Teacher and student scored on exactly the same bytes: bits per byte and chunk agreement."""

from __future__ import annotations

from torch import Tensor, nn

from ctd.alignment import CrossTokenizerBatch
from ctd.metrics import BitsPerByte, ChunkAgreement, joint_valid_chunk_mask


class PairedEvaluation(nn.Module):
    """Bits per byte of two models over the chunks both score, and how closely they agree.

    Only chunks that are valid on both sides count (`joint_valid_chunk_mask`), so the two
    figures are over identical bytes and directly comparable. The metrics are torchmetrics
    objects (summed across processes); a LightningModule can log `teacher_bpb`/`student_bpb`
    directly.

    Shapes:
        update: teacher_logprobs (B, Tt), student_logprobs (B, Ts) token log-probabilities.
    """

    def __init__(self) -> None:
        super().__init__()
        self.teacher_bpb = BitsPerByte()
        self.student_bpb = BitsPerByte()
        self.agreement = ChunkAgreement()

    def update(
        self, batch: CrossTokenizerBatch, teacher_logprobs: Tensor, student_logprobs: Tensor
    ) -> None:
        """Add one aligned batch."""
        chunk_mask = joint_valid_chunk_mask(
            batch.teacher_chunk_index,
            batch.student_chunk_index,
            batch.chunk_num_bytes,
            batch.teacher_loss_mask,
            batch.student_loss_mask,
        )  # (B, C)
        self.teacher_bpb.update(
            teacher_logprobs,
            batch.teacher_chunk_index,
            batch.chunk_num_bytes,
            batch.teacher_loss_mask,
            chunk_mask,
        )
        self.student_bpb.update(
            student_logprobs,
            batch.student_chunk_index,
            batch.chunk_num_bytes,
            batch.student_loss_mask,
            chunk_mask,
        )
        self.agreement.update(
            teacher_logprobs,
            student_logprobs,
            batch.teacher_chunk_index,
            batch.student_chunk_index,
            batch.chunk_num_bytes,
            batch.teacher_loss_mask,
            batch.student_loss_mask,
        )

    def agreement_values(self) -> dict[str, Tensor]:
        """Chunk agreement (a dict-valued metric), computed then reset."""
        values = {name: value.float() for name, value in self.agreement.compute().items()}
        self.agreement.reset()
        return values
