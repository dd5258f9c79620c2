"""`DistillationModule`: tokenizer transfer and cross-tokenizer distillation with Lightning.

A frozen teacher and a trainable student see the same texts through their own tokenizers; the
batch carries both tokenizations and their chunk alignment (`ctd.alignment`). `training_step`
only wires the batch to the losses of `ctd.losses` and combines them.
"""

from __future__ import annotations

import warnings

import lightning as L
import torch
from torch import Tensor, nn

from ctd.alignment import CrossTokenizerBatch, alignment_statistics
from ctd.config import OptimConfig
from ctd.losses import approx_gradmag_preserve_mag
from ctd.metrics import BitsPerByte, ChunkAgreement, joint_valid_chunk_mask
from ctd.trainers._common import (
    SideOutputs,
    build_optimizer,
    causal_lm_forward,
    freeze,
    last_layer_parameters,
    warmup_cosine,
)
from ctd.trainers.loss_wiring import LOSSES_NEEDING_LOGITS, compute_losses
from ctd.trainers.vocab import SideVocab

# The frozen teacher is in eval mode on purpose.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


class DistillationModule(L.LightningModule):
    """Train `student` to match `teacher` across tokenizers.

    Args:
        teacher: the frozen causal LM (kept out of checkpoints; reloaded from its config).
        student: the trainable causal LM, with its own (possibly new) vocabulary.
        teacher_vocab: teacher token facts (space-like mask, EOS id).
        student_vocab: the same for the student.
        losses: short name -> loss module from `ctd.losses.LOSSES`.
        loss_weights: short name -> weight (used by `weighted_sum`).
        loss_aggregation: `gradmag_preserve_mag` or `weighted_sum`.
        optim: optimizer and schedule settings.
        max_steps: total steps, for the schedule.
    """

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        teacher_vocab: SideVocab,
        student_vocab: SideVocab,
        losses: dict[str, nn.Module],
        loss_weights: dict[str, float],
        *,
        loss_aggregation: str = "gradmag_preserve_mag",
        optim: OptimConfig | None = None,
        max_steps: int = 100,
    ) -> None:
        super().__init__()
        if loss_aggregation not in {"gradmag_preserve_mag", "weighted_sum"}:
            raise ValueError(f"unknown loss_aggregation {loss_aggregation!r}")
        self.teacher = freeze(teacher)
        self.student = student.train()
        self.teacher_vocab = teacher_vocab
        self.student_vocab = student_vocab
        self.losses = nn.ModuleDict(losses)
        self.loss_weights = dict(loss_weights)
        self.loss_aggregation = loss_aggregation
        self.optim = optim or OptimConfig()
        self.max_steps = max_steps
        self.with_logits = any(name in LOSSES_NEEDING_LOGITS for name in losses)
        self.teacher_bpb = BitsPerByte()
        self.student_bpb = BitsPerByte()
        self.agreement = ChunkAgreement()
        self.strict_loading = False  # checkpoints hold the student only

    def _side(self, model: nn.Module, vocab: SideVocab, ids: Tensor, mask: Tensor) -> SideOutputs:
        return causal_lm_forward(
            model,
            ids,
            mask,
            space_token_mask=vocab.space_token_mask.to(ids.device),
            eos_token_id=vocab.eos_token_id,
            with_logits=self.with_logits,
        )

    def forward_both(self, batch: CrossTokenizerBatch) -> tuple[SideOutputs, SideOutputs]:
        """Teacher (no grad) and student forward passes on one aligned batch."""
        self.teacher.eval()
        with torch.no_grad():
            teacher = self._side(
                self.teacher,
                self.teacher_vocab,
                batch.teacher_input_ids,
                batch.teacher_attention_mask,
            )
        student = self._side(
            self.student, self.student_vocab, batch.student_input_ids, batch.student_attention_mask
        )
        return teacher, student

    def training_step(self, batch: CrossTokenizerBatch, batch_idx: int) -> Tensor:
        """One step: both forward passes, every loss, one combined objective."""
        teacher, student = self.forward_both(batch)
        values = compute_losses(self.losses, batch, teacher, student)
        if self.loss_aggregation == "gradmag_preserve_mag" and len(values) > 1:
            total = approx_gradmag_preserve_mag(
                list(values.values()), last_layer_parameters(self.student)
            )
        else:
            total = torch.stack([self.loss_weights[k] * v for k, v in values.items()]).sum()
        size = batch.student_input_ids.shape[0]
        self.log_dict({f"train/{k}": v.detach() for k, v in values.items()}, batch_size=size)
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=size)
        self.log_dict(alignment_statistics(batch), batch_size=size)
        return total

    def validation_step(self, batch: CrossTokenizerBatch, batch_idx: int) -> None:
        """Bits per byte of teacher and student on the same (jointly scored) bytes."""
        teacher, student = self.forward_both(batch)
        teacher_logprobs = teacher.token_logprobs.logprobs  # (B, Tt)
        student_logprobs = student.token_logprobs.logprobs  # (B, Ts)
        chunk_mask = joint_valid_chunk_mask(
            batch.teacher_chunk_index,
            batch.student_chunk_index,
            batch.chunk_num_bytes,
            batch.teacher_loss_mask,
            batch.student_loss_mask,
        )  # (B, C)
        for metric, logprobs, chunk_index, token_mask in (
            (
                self.teacher_bpb,
                teacher_logprobs,
                batch.teacher_chunk_index,
                batch.teacher_loss_mask,
            ),
            (
                self.student_bpb,
                student_logprobs,
                batch.student_chunk_index,
                batch.student_loss_mask,
            ),
        ):
            metric.update(logprobs, chunk_index, batch.chunk_num_bytes, token_mask, chunk_mask)
        self.agreement.update(
            teacher_logprobs,
            student_logprobs,
            batch.teacher_chunk_index,
            batch.student_chunk_index,
            batch.chunk_num_bytes,
            batch.teacher_loss_mask,
            batch.student_loss_mask,
        )
        size = batch.student_input_ids.shape[0]
        self.log("val/teacher_bpb", self.teacher_bpb, batch_size=size)
        self.log("val/student_bpb", self.student_bpb, prog_bar=True, batch_size=size)

    def on_validation_epoch_end(self) -> None:
        """Log chunk agreement (a dict-valued metric) and reset it."""
        values = {f"val/{k}": v.float() for k, v in self.agreement.compute().items()}
        self.log_dict(values)
        self.agreement.reset()

    def configure_optimizers(self):  # type: ignore[no-untyped-def]  # noqa: D102
        optimizer = build_optimizer(self.student, self.optim, extra=self.losses)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: warmup_cosine(
                step,
                warmup_steps=self.optim.warmup_steps,
                total_steps=self.max_steps,
                min_ratio=self.optim.min_lr_ratio,
            ),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:  # type: ignore[type-arg]  # noqa: D102
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("teacher.")]:
            del state[key]
