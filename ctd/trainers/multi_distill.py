"""Task `multi_distill`: one student distilled from several teachers of different tokenizers.

The texts are aligned K-way (`ctd.alignment.MultiTokenizerCollator`: the teachers' and the
student's tokenizations, side k = teacher k, the last side = the student), so every teacher
scores every chunk. ALM then uses the teachers by `multi_teacher`:

* `ensemble`: the chunk-level mixture teacher, log sum_k w_k p_k(chunk)
  (`ctd.losses.multi_teacher_alm`);
* `sum`: sum_k w_k ALM(student, teacher_k), each on the K-way chunks.

`teacher_weights` are normalised to sum 1 (empty: equal). Other losses (`sft`) read the student
only. A schema + LightningModule + one registry line (docs/trainers.md); everything else comes
from `ctd.trainers` (builders, `_common`, the distillation wirings).

Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083, Sec. 3.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ctd.alignment import MultiTokenizerBatch, MultiTokenizerCollator
from ctd.config import (
    LOSS_AGGREGATIONS,
    ConfigError,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    check_choice,
)
from ctd.evaluation import PairedEvaluation
from ctd.losses.multi_teacher_alm import (
    ENSEMBLE_MERGE_ERROR,
    MULTI_TEACHER_COMBINES,
    MultiTeacherALMLoss,
    normalized_teacher_weights,
)
from ctd.trainers._common import (
    causal_lm_forward,
    combine_losses,
    drop_frozen_weights,
    freeze,
    log_training_losses,
    optimizer_and_schedule,
)
from ctd.trainers.builders import build_datamodule, load_model, num_embeddings
from ctd.trainers.distill_wiring import DISTILL_WIRINGS
from ctd.trainers.distributed import mean_over_ranks
from ctd.trainers.task import PreparedRun
from ctd.trainers.vocab import SideVocab
from ctd.trainers.wiring import (
    Need,
    SideOutputs,
    WiringTable,
    build_loss_modules,
    check_losses,
    side_needs,
)

MULTI_DISTILL_WIRINGS: WiringTable = {name: DISTILL_WIRINGS[name] for name in ("alm", "sft")}
"""Losses of task `multi_distill`: what each reads per side. `alm` reads every teacher (the
module calls `MultiTeacherALMLoss` with all of them); `sft` reads the student only."""
SCORING = frozenset({Need.TOKEN_LOGPROBS})


@dataclass
class MultiDistillConfig(RunConfig):
    """Task `multi_distill`: a student (its own model and tokenizer) and K >= 1 teachers."""

    task: str = "multi_distill"
    teachers: list[ModelConfig] = field(default_factory=list)
    """The frozen teachers, each with its own tokenizer."""
    teacher_weights: list[float] = field(default_factory=list)
    """One weight per teacher, normalised to sum 1; empty: equal weights."""
    multi_teacher: str = "ensemble"
    """`ensemble` (chunk-level mixture teacher) or `sum` (weighted sum of per-teacher ALM)."""
    student: ModelConfig = field(default_factory=ModelConfig)
    losses: list[LossConfig] = field(default_factory=lambda: [LossConfig()])
    loss_aggregation: str = "weighted_sum"
    """`weighted_sum` or `gradmag_preserve_mag` (GradMag over the configured losses)."""
    data: DataConfig = field(default_factory=DataConfig)
    """`data.max_teacher_length` applies to every teacher."""
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        check_choice("multi_teacher", self.multi_teacher, MULTI_TEACHER_COMBINES)
        check_choice("loss_aggregation", self.loss_aggregation, LOSS_AGGREGATIONS)


class MultiDistillationModule(L.LightningModule):
    """Train `student` against several frozen teachers on K-way chunks.

    Args:
        teachers: the frozen causal LMs (kept out of checkpoints).
        student: the trainable causal LM.
        teacher_vocabs: per teacher, its token facts (space-like mask, EOS id).
        student_vocab: the student's.
        losses: name -> module; `alm` must be a `MultiTeacherALMLoss`.
        loss_weights: name -> weight (for `weighted_sum`).
        loss_aggregation: `weighted_sum` or `gradmag_preserve_mag`.
        optim: optimizer and schedule settings.
        max_steps: total steps, for the schedule.
    """

    def __init__(
        self,
        teachers: Sequence[nn.Module],
        student: nn.Module,
        teacher_vocabs: Sequence[SideVocab],
        student_vocab: SideVocab,
        losses: Mapping[str, nn.Module],
        loss_weights: Mapping[str, float],
        *,
        loss_aggregation: str,
        optim: OptimConfig,
        max_steps: int,
    ) -> None:
        super().__init__()
        self.teachers = nn.ModuleList([freeze(teacher) for teacher in teachers])
        self.student = student.train()
        self.teacher_vocabs = list(teacher_vocabs)
        self.student_vocab = student_vocab
        self.losses = nn.ModuleDict(dict(losses))
        self.loss_weights = dict(loss_weights)
        self.loss_aggregation = loss_aggregation
        self.optim = optim
        self.max_steps = max_steps
        self.teacher_needs, self.student_needs = side_needs(MULTI_DISTILL_WIRINGS, losses)
        self.evaluations = nn.ModuleList([PairedEvaluation() for _ in teachers])
        self.strict_loading = False  # checkpoints hold the student only

    def forward_sides(
        self,
        batch: MultiTokenizerBatch,
        teacher_needs: frozenset[Need],
        student_needs: frozenset[Need],
    ) -> tuple[list[SideOutputs], SideOutputs]:
        """Every teacher (no grad; skipped when nothing is needed) and the student."""
        teachers = []
        for k, (teacher, vocab) in enumerate(zip(self.teachers, self.teacher_vocabs, strict=True)):
            teacher.eval()
            with torch.no_grad():
                teachers.append(_side(teacher, vocab, batch, k, teacher_needs))
        student = _side(self.student, self.student_vocab, batch, len(self.teachers), student_needs)
        return teachers, student

    def loss_values(
        self, batch: MultiTokenizerBatch, teachers: list[SideOutputs], student: SideOutputs
    ) -> dict[str, Tensor]:
        """Every configured loss, by name."""
        pair = batch.pair(0, len(self.teachers))  # the student-only losses read this view
        values = {}
        for name, loss in self.losses.items():
            if name == "alm":
                values[name] = _multi_teacher_alm(loss, batch, teachers, student)
            else:
                values[name] = MULTI_DISTILL_WIRINGS[name].call(loss, pair, teachers[0], student)
        return values

    def training_step(self, batch: MultiTokenizerBatch, batch_idx: int) -> Tensor:
        """One step: the forward passes the losses need, every loss, one combined objective."""
        teachers, student = self.forward_sides(batch, self.teacher_needs, self.student_needs)
        values = self.loss_values(batch, teachers, student)
        total = combine_losses(
            values,
            self.loss_weights,
            aggregation=self.loss_aggregation,
            student=self.student,
            reduce_gradient=mean_over_ranks,  # the same GradMag weights on every rank
        )
        log_training_losses(self, values, total, batch.input_ids[-1].shape[0])
        return total

    def validation_step(self, batch: MultiTokenizerBatch, batch_idx: int) -> None:
        """Bits per byte of each teacher and of the student, on the bytes both of a pair score."""
        teachers, student = self.forward_sides(batch, SCORING, SCORING)
        size = batch.input_ids[-1].shape[0]
        for k, teacher in enumerate(teachers):
            evaluation = self._evaluation(k)
            evaluation.update(
                batch.pair(k, len(self.teachers)),
                teacher[Need.TOKEN_LOGPROBS],
                student[Need.TOKEN_LOGPROBS],
            )
            self.log(f"val/teacher{k}_bpb", evaluation.teacher_bpb, batch_size=size)
            self.log(f"val/student_bpb_teacher{k}_bytes", evaluation.student_bpb, batch_size=size)
        self.log("val/student_bpb", self._evaluation(0).student_bpb, prog_bar=True, batch_size=size)

    def _evaluation(self, teacher: int) -> PairedEvaluation:
        evaluation = self.evaluations[teacher]
        assert isinstance(evaluation, PairedEvaluation)
        return evaluation

    def configure_optimizers(self):  # type: ignore[no-untyped-def]  # noqa: D102
        return optimizer_and_schedule(self.student, self.optim, self.max_steps, extra=self.losses)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        drop_frozen_weights(checkpoint, "teachers.")


def _side(
    model: nn.Module,
    vocab: SideVocab,
    batch: MultiTokenizerBatch,
    side: int,
    needs: frozenset[Need],
) -> SideOutputs:
    ids, mask = batch.input_ids[side], batch.attention_mask[side]
    if not needs:
        return SideOutputs(ids, {})
    return causal_lm_forward(
        model,
        ids,
        mask,
        needs,
        space_token_mask=vocab.space_token_mask.to(ids.device),
        eos_token_id=vocab.eos_token_id,
    )


def _multi_teacher_alm(
    loss: nn.Module, batch: MultiTokenizerBatch, teachers: list[SideOutputs], student: SideOutputs
) -> Tensor:
    """`MultiTeacherALMLoss` on every teacher's outputs (side k) and the student's (last side)."""
    space = Need.EOS_LOGPROBS if loss.eos_as_space else Need.SPACE_LOGPROBS
    value: Tensor = loss(
        student_logprobs=student[Need.TOKEN_LOGPROBS],
        teacher_logprobs=[teacher[Need.TOKEN_LOGPROBS] for teacher in teachers],
        student_chunk_index=batch.chunk_index[-1],
        teacher_chunk_index=batch.chunk_index[:-1],
        student_space_logprobs=student[space],
        teacher_space_logprobs=[teacher[space] for teacher in teachers],
        student_mask=batch.loss_mask[-1],
        teacher_mask=batch.loss_mask[:-1],
        num_chunks=batch.chunk_num_bytes.shape[1],
    )
    return value


def check_multi_distill_config(config: MultiDistillConfig) -> None:
    """What can be checked before any model is loaded (runs when the config loads)."""
    check_losses(config.losses, MULTI_DISTILL_WIRINGS, "multi_distill")
    if not config.teachers:
        raise ConfigError("teachers: at least one teacher is needed (a list of model configs)")
    for k, teacher in enumerate(config.teachers):
        if not teacher.name_or_path:
            raise ConfigError(f"teachers[{k}] needs name_or_path")
        if teacher.cache is not None:
            raise ConfigError(f"teachers[{k}].cache: task multi_distill runs its teachers live")
    if not config.student.name_or_path:
        raise ConfigError("student.name_or_path is needed (the student's own model)")
    try:
        normalized_teacher_weights(config.teacher_weights, len(config.teachers))
    except ValueError as error:
        raise ConfigError(f"teacher_weights: {error}") from None
    if config.data.alignment_mode == "unbiased" and len(config.teachers) > 1:
        raise ConfigError(
            "data.alignment_mode=unbiased is pairwise; with several teachers use unconstrained "
            "or space"
        )
    for loss in config.losses:
        merges = loss.name == "alm" and loss.kwargs.get("merge_by_space_prob")
        if merges and config.multi_teacher == "ensemble":
            raise ConfigError(ENSEMBLE_MERGE_ERROR)


def build_multi_module(
    config: MultiDistillConfig,
    teachers: Sequence[tuple[Any, Any]],
    student: Any,
    student_tokenizer: Any,
) -> MultiDistillationModule:
    """The LightningModule for `config` from loaded (teacher, tokenizer) pairs and the student."""
    others = [(loss.name, loss.kwargs) for loss in config.losses if loss.name != "alm"]
    losses = build_loss_modules(others, MULTI_DISTILL_WIRINGS, {})
    for loss in config.losses:
        if loss.name == "alm":
            losses["alm"] = MultiTeacherALMLoss(
                combine=config.multi_teacher,
                teacher_weights=config.teacher_weights or None,
                **loss.kwargs,
            )
    return MultiDistillationModule(
        [model for model, _ in teachers],
        student,
        [
            SideVocab.from_tokenizer(tokenizer, num_embeddings(model))
            for model, tokenizer in teachers
        ],
        SideVocab.from_tokenizer(student_tokenizer, num_embeddings(student)),
        losses,
        {loss.name: loss.weight for loss in config.losses},
        loss_aggregation=config.loss_aggregation,
        optim=config.optim,
        max_steps=config.trainer.max_steps,
    )


def setup_multi_distill(config: MultiDistillConfig) -> PreparedRun:
    """Models, K-way data and module for task `multi_distill`; every bad input fails here."""
    teachers = [load_model(teacher) for teacher in config.teachers]
    student, student_tokenizer = load_model(config.student)
    eos_as_space = any(
        loss.name == "alm" and loss.kwargs.get("eos_as_space") for loss in config.losses
    )
    tokenizers = [tokenizer for _, tokenizer in teachers] + [student_tokenizer]
    for k, tokenizer in enumerate(tokenizers):
        if eos_as_space and getattr(tokenizer, "eos_token_id", None) is None:
            side = "the student" if k == len(teachers) else f"teachers[{k}]"
            raise ValueError(f"alm eos_as_space=true needs an EOS token; {side} has none")
    data = config.data
    datamodule = build_datamodule(data, tokenizers[0], student_tokenizer, seed=config.seed)
    datamodule.connect_collator(
        MultiTokenizerCollator(
            tokenizers,
            max_lengths=[data.max_teacher_length] * len(teachers) + [data.max_student_length],
            mode=data.alignment_mode,
            bias=data.tokenizer_bias,
            on_unmappable=data.on_unmappable,
        )
    )
    module = build_multi_module(config, teachers, student, student_tokenizer)
    from ctd.models import export_pretrained

    export = functools.partial(export_pretrained, student, student_tokenizer)
    return PreparedRun(module, datamodule, export, report={"teachers": len(teachers)})
