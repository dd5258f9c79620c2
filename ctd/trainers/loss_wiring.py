"""Which tensors of a batch and of the two forward passes each registered loss receives.

One small function per loss family; `compute_losses` dispatches on the registry name. Losses that
compare full next-token distributions need the (B, T, V) logits (`LOSSES_NEEDING_LOGITS`); the
ALM family and SFT work from main-path log-probabilities only, which never materialise them.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from ctd.alignment import CrossTokenizerBatch
from ctd.losses.dskd import DSKDSide
from ctd.trainers._common import SideOutputs

Wiring = Callable[[nn.Module, CrossTokenizerBatch, SideOutputs, SideOutputs], Tensor]


def _space(side: SideOutputs, use_eos: bool) -> Tensor | None:
    return side.token_logprobs.eos_logprobs if use_eos else side.token_logprobs.space_logprobs


def _alm(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    use_eos = bool(getattr(loss, "eos_as_space", False))
    value: Tensor = loss(
        teacher.token_logprobs.logprobs,
        student.token_logprobs.logprobs,
        batch.teacher_chunk_index,
        batch.student_chunk_index,
        teacher_space_logprobs=_space(teacher, use_eos),
        student_space_logprobs=_space(student, use_eos),
        teacher_mask=batch.teacher_loss_mask,
        student_mask=batch.student_loss_mask,
        num_chunks=batch.chunk_num_bytes.shape[1],
    )
    return value


def _alm_latents(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    value: Tensor = loss(
        teacher.hidden,
        student.hidden,
        batch.teacher_chunk_index,
        batch.student_chunk_index,
        num_chunks=batch.chunk_num_bytes.shape[1],
    )
    return value


def _sft(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    value: Tensor = loss(student.token_logprobs.logprobs, batch.student_loss_mask)
    return value


def _prediction_mask(loss_mask: Tensor) -> Tensor:
    """Positions whose next token counts: logits at t predict token t + 1. Shapes: (B, T)."""
    shifted = loss_mask.new_zeros(loss_mask.shape)
    shifted[:, :-1] = loss_mask[:, 1:]
    return shifted


def _same_vocabulary(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    assert teacher.logits is not None
    assert student.logits is not None
    if teacher.input_ids.shape != student.input_ids.shape or not bool(
        (teacher.input_ids == student.input_ids).all()
    ):
        raise ValueError(
            f"loss {type(loss).__name__} compares next-token distributions position by position "
            "and needs one shared tokenizer; use alm, uld or dskd across tokenizers"
        )
    vocab = min(teacher.logits.shape[-1], student.logits.shape[-1])
    value: Tensor = loss(
        student.logits[..., :vocab],
        teacher.logits[..., :vocab],
        _prediction_mask(batch.student_loss_mask),
    )
    return value


def _uld(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    assert teacher.logits is not None
    assert student.logits is not None
    value: Tensor = loss(
        student.logits,
        teacher.logits,
        _prediction_mask(batch.student_loss_mask),
        _prediction_mask(batch.teacher_loss_mask),
    )
    return value


def _dskd_side(side: SideOutputs, loss_mask: Tensor) -> DSKDSide:
    assert side.logits is not None
    return DSKDSide(
        logits=side.logits,
        hidden=side.hidden,
        input_ids=side.input_ids,
        input_embeddings=side.input_embedding_weight,
        output_embeddings=side.output_embedding_weight,
        mask=loss_mask,
    )


def _dskd(
    loss: nn.Module, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> Tensor:
    value: Tensor = loss(
        _dskd_side(student, batch.student_loss_mask), _dskd_side(teacher, batch.teacher_loss_mask)
    )
    return value


WIRINGS: dict[str, Wiring] = {
    "alm": _alm,
    "alm_latents": _alm_latents,
    "sft": _sft,
    "kl": _same_vocabulary,
    "reverse_kl": _same_vocabulary,
    "jsd": _same_vocabulary,
    "tvd": _same_vocabulary,
    "uld": _uld,
    "dskd": _dskd,
}
"""Losses this trainer can wire. `mined` needs an offline student->teacher vocabulary map and
`tvdpp` belongs to the drafter trainer; both are callable as library functions."""

LOSSES_NEEDING_LOGITS: frozenset[str] = frozenset({"kl", "reverse_kl", "jsd", "tvd", "uld", "dskd"})


def compute_losses(
    losses: nn.ModuleDict, batch: CrossTokenizerBatch, teacher: SideOutputs, student: SideOutputs
) -> dict[str, Tensor]:
    """Every configured loss on one batch, by registry name."""
    return {name: WIRINGS[name](loss, batch, teacher, student) for name, loss in losses.items()}
