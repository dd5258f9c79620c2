"""The distillation task's loss table: which tensors each loss receives, and how it is called.

Every call passes tensors by keyword (`student_*` / `teacher_*`), so the wiring does not depend
on argument order. Same-vocabulary losses (KL, reverse KL, JSD, TVD) compare next-token
distributions position by position and need both sides on one tokenizer; ALM, ULD, DSKD and
MinED work across tokenizers. `tvdpp` belongs to drafter training. ALM and SFT divide by the
count of valid chunks / scored tokens summed over data-parallel ranks (`ctd.trainers.distributed`),
so a DDP step equals one process's step on the global batch.
"""

from __future__ import annotations

from torch import Tensor, nn

from ctd.alignment import CrossTokenizerBatch
from ctd.losses import DSKDSide
from ctd.trainers.distributed import global_mean_normalizer
from ctd.trainers.wiring import LossWiring, Need, SideOutputs, WiringTable, prediction_mask

TOKEN = frozenset({Need.TOKEN_LOGPROBS})
LOGITS = frozenset({Need.LOGITS})
ALM_NEEDS = frozenset({Need.TOKEN_LOGPROBS, Need.SPACE_LOGPROBS, Need.EOS_LOGPROBS})


def _alm(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    space = Need.EOS_LOGPROBS if loss.eos_as_space else Need.SPACE_LOGPROBS
    value: Tensor = loss(
        student_logprobs=student[Need.TOKEN_LOGPROBS],
        teacher_logprobs=teacher[Need.TOKEN_LOGPROBS],
        student_chunk_index=batch.student_chunk_index,
        teacher_chunk_index=batch.teacher_chunk_index,
        student_space_logprobs=student[space],
        teacher_space_logprobs=teacher[space],
        student_mask=batch.student_loss_mask,
        teacher_mask=batch.teacher_loss_mask,
        num_chunks=batch.chunk_num_bytes.shape[1],
        normalizer=global_mean_normalizer,  # one process: the local count
    )
    return value


def _alm_latents(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    value: Tensor = loss(
        student_hidden_states=student[Need.HIDDEN],
        teacher_hidden_states=teacher[Need.HIDDEN],
        student_chunk_index=batch.student_chunk_index,
        teacher_chunk_index=batch.teacher_chunk_index,
        num_chunks=batch.chunk_num_bytes.shape[1],
    )
    return value


def _sft(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    value: Tensor = loss(
        logprobs=student[Need.TOKEN_LOGPROBS],
        mask=batch.student_loss_mask,
        normalizer=global_mean_normalizer,
    )
    return value


def _same_vocabulary(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    if teacher.input_ids.shape != student.input_ids.shape or not bool(
        (teacher.input_ids == student.input_ids).all()
    ):
        raise ValueError(
            f"loss {type(loss).__name__} compares next-token distributions position by position "
            "and needs one shared tokenizer; use alm, uld, dskd or mined across tokenizers"
        )
    teacher_logits, student_logits = teacher[Need.LOGITS], student[Need.LOGITS]
    vocab = min(teacher_logits.shape[-1], student_logits.shape[-1])
    value: Tensor = loss(
        student_logits=student_logits[..., :vocab],
        teacher_logits=teacher_logits[..., :vocab],
        mask=prediction_mask(batch.student_loss_mask),
    )
    return value


def _uld(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    value: Tensor = loss(
        student_logits=student[Need.LOGITS],
        teacher_logits=teacher[Need.LOGITS],
        student_mask=prediction_mask(batch.student_loss_mask),
        teacher_mask=prediction_mask(batch.teacher_loss_mask),
    )
    return value


def _dskd_side(side: SideOutputs, loss_mask: Tensor) -> DSKDSide:
    input_embeddings, output_embeddings = side[Need.EMBEDDINGS]
    return DSKDSide(
        logits=side[Need.LOGITS],
        hidden=side[Need.HIDDEN],
        input_ids=side.input_ids,
        input_embeddings=input_embeddings,
        output_embeddings=output_embeddings,
        mask=loss_mask,
    )


def _dskd(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    value: Tensor = loss(
        student=_dskd_side(student, batch.student_loss_mask),
        teacher=_dskd_side(teacher, batch.teacher_loss_mask),
    )
    return value


def _mined(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    value: Tensor = loss(
        student_logits=student[Need.LOGITS],
        teacher_logits=teacher[Need.LOGITS],
        student_input_ids=student.input_ids,
        student_chunk_index=batch.student_chunk_index,
        teacher_chunk_index=batch.teacher_chunk_index,
        student_mask=batch.student_loss_mask,
        teacher_mask=batch.teacher_loss_mask,
    )
    return value


DSKD_NEEDS = frozenset({Need.LOGITS, Need.HIDDEN, Need.EMBEDDINGS})
SAME_VOCABULARY = LossWiring(_same_vocabulary, LOGITS, LOGITS)
DIMS = frozenset({"student_dim", "teacher_dim"})

DISTILL_WIRINGS: WiringTable = {
    "alm": LossWiring(_alm, ALM_NEEDS, ALM_NEEDS, uses_chunks=True),
    "alm_latents": LossWiring(
        _alm_latents,
        frozenset({Need.HIDDEN}),
        frozenset({Need.HIDDEN}),
        uses_chunks=True,
        setup=DIMS,
    ),
    "sft": LossWiring(_sft, TOKEN),
    "kl": SAME_VOCABULARY,
    "reverse_kl": SAME_VOCABULARY,
    "jsd": SAME_VOCABULARY,
    "tvd": SAME_VOCABULARY,
    "uld": LossWiring(_uld, LOGITS, LOGITS),
    "dskd": LossWiring(_dskd, DSKD_NEEDS, DSKD_NEEDS, setup=DIMS),
    "mined": LossWiring(
        _mined, LOGITS, LOGITS, uses_chunks=True, setup=frozenset({"student_to_teacher"})
    ),
}
"""Losses the distillation task trains, by `ctd.losses.LOSSES` name."""
