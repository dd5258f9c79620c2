"""Task `distill`: tokenizer transfer and cross-tokenizer distillation with Lightning.

A frozen teacher and a trainable student see the same texts through their own tokenizers; the
batch carries both tokenizations and their chunk alignment (`ctd.alignment`). `training_step`
only wires the batch to the losses of `ctd.losses` (through `DISTILL_WIRINGS`) and combines them.
`setup_distill` turns a `DistillConfig` into the module, the data and the export.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ctd.alignment import CrossTokenizerBatch, alignment_statistics
from ctd.config import BYTE_LEVEL, DistillConfig, LoRAConfig, OptimConfig
from ctd.evaluation import PairedEvaluation
from ctd.trainers._common import (
    NonFiniteOutputs,
    causal_lm_forward,
    combine_losses,
    drop_frozen_weights,
    freeze,
    log_training_losses,
    optimizer_and_schedule,
)
from ctd.trainers.builders import build_datamodule, hidden_size, load_model, num_embeddings
from ctd.trainers.distill_wiring import DISTILL_WIRINGS
from ctd.trainers.distributed import any_rank, mean_over_ranks
from ctd.trainers.faults import nonfinite_side_outputs, zero_loss
from ctd.trainers.task import PreparedRun
from ctd.trainers.teacher_cache import (
    CachedTeacher,
    check_teacher_cache_config,
    open_teacher_cache,
)
from ctd.trainers.vocab import SideVocab
from ctd.trainers.wiring import (
    Need,
    SideOutputs,
    build_loss_modules,
    check_losses,
    compute_losses,
    side_needs,
)

# The frozen teacher is in eval mode on purpose.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")

SCORING = frozenset({Need.TOKEN_LOGPROBS})
"""What validation reads from both sides."""


class DistillationModule(L.LightningModule):
    """Train `student` to match `teacher` across tokenizers.

    Args:
        teacher: the frozen causal LM (kept out of checkpoints; reloaded from its config).
        student: the trainable causal LM, with its own (possibly new) vocabulary.
        teacher_vocab: teacher token facts (space-like mask, EOS id).
        student_vocab: the same for the student.
        losses: short name -> loss module; each name must be in `DISTILL_WIRINGS`.
        loss_weights: short name -> weight (used by `weighted_sum`).
        loss_aggregation: `gradmag_preserve_mag` or `weighted_sum` (`DistillConfig`).
        optim: optimizer and schedule settings.
        max_steps: total steps, for the schedule.
    """

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        teacher_vocab: SideVocab,
        student_vocab: SideVocab,
        losses: Mapping[str, nn.Module],
        loss_weights: Mapping[str, float],
        *,
        loss_aggregation: str,
        optim: OptimConfig,
        max_steps: int,
    ) -> None:
        super().__init__()
        self.teacher = freeze(teacher)
        self.student = student.train()
        self.teacher_vocab = teacher_vocab
        self.student_vocab = student_vocab
        self.losses = nn.ModuleDict(dict(losses))
        self.loss_weights = dict(loss_weights)
        self.loss_aggregation = loss_aggregation
        self.optim = optim
        self.max_steps = max_steps
        self.teacher_needs, self.student_needs = side_needs(DISTILL_WIRINGS, losses)
        self.evaluation = PairedEvaluation()
        self.nonfinite_outputs: str | None = None  # read by NonFiniteGuard
        self.teacher_cache: CachedTeacher | None = None
        self.strict_loading = False  # checkpoints hold the student only

    def _side(
        self, model: nn.Module, vocab: SideVocab, ids: Tensor, mask: Tensor, needs: frozenset[Need]
    ) -> SideOutputs:
        if not needs:
            return SideOutputs(ids, {})
        return causal_lm_forward(
            model,
            ids,
            mask,
            needs,
            space_token_mask=vocab.space_token_mask.to(ids.device),
            eos_token_id=vocab.eos_token_id,
            side="student" if model is self.student else "teacher",
        )

    def forward_both(
        self,
        batch: CrossTokenizerBatch,
        teacher_needs: frozenset[Need],
        student_needs: frozenset[Need],
    ) -> tuple[SideOutputs, SideOutputs]:
        """Teacher (no grad; skipped when nothing is needed, read from a cache) and student."""
        if self.teacher_cache is not None:
            teacher = self.teacher_cache.side_outputs(
                batch.teacher_input_ids, batch.teacher_attention_mask, teacher_needs
            )
        else:
            teacher = self._teacher_side(batch, teacher_needs)
        student = self._side(
            self.student,
            self.student_vocab,
            batch.student_input_ids,
            batch.student_attention_mask,
            student_needs,
        )
        return teacher, student

    def use_teacher_cache(self, cache: CachedTeacher) -> None:
        """Read the teacher's outputs from `cache` (`ctd cache-teacher`); drop the teacher model."""
        self.teacher_cache = cache
        self.teacher = freeze(nn.Module())  # nothing left to run or to hold in memory

    def _teacher_side(
        self, batch: CrossTokenizerBatch, teacher_needs: frozenset[Need]
    ) -> SideOutputs:
        self.teacher.eval()
        with torch.no_grad():
            return self._side(
                self.teacher,
                self.teacher_vocab,
                batch.teacher_input_ids,
                batch.teacher_attention_mask,
                teacher_needs,
            )

    def training_step(self, batch: CrossTokenizerBatch, batch_idx: int) -> Tensor:
        """One step: the forward passes the losses need, every loss, one combined objective."""
        try:
            teacher, student = self.forward_both(batch, self.teacher_needs, self.student_needs)
            self.nonfinite_outputs = nonfinite_side_outputs(teacher, student)
        except NonFiniteOutputs as error:
            self.nonfinite_outputs = str(error)
        if any_rank(bool(self.nonfinite_outputs), self.device):  # NonFiniteGuard stops or skips
            return zero_loss(self.student)
        values = compute_losses(DISTILL_WIRINGS, self.losses, batch, teacher, student)
        total = combine_losses(
            values,
            self.loss_weights,
            aggregation=self.loss_aggregation,
            student=self.student,
            reduce_gradient=mean_over_ranks,  # the same GradMag weights on every rank
        )
        size = batch.student_input_ids.shape[0]
        log_training_losses(self, values, total, size)
        self.log_dict(alignment_statistics(batch), batch_size=size)
        return total

    def validation_step(self, batch: CrossTokenizerBatch, batch_idx: int) -> None:
        """Bits per byte of teacher and student on the same (jointly scored) bytes."""
        teacher, student = self.forward_both(batch, SCORING, SCORING)
        self.evaluation.update(batch, teacher[Need.TOKEN_LOGPROBS], student[Need.TOKEN_LOGPROBS])
        size = batch.student_input_ids.shape[0]
        self.log("val/teacher_bpb", self.evaluation.teacher_bpb, batch_size=size)
        self.log("val/student_bpb", self.evaluation.student_bpb, prog_bar=True, batch_size=size)

    def on_validation_epoch_end(self) -> None:
        """Log chunk agreement (a dict-valued metric) and reset it."""
        self.log_dict({f"val/{k}": v for k, v in self.evaluation.agreement_values().items()})

    def configure_optimizers(self):  # type: ignore[no-untyped-def]  # noqa: D102
        return optimizer_and_schedule(self.student, self.optim, self.max_steps, extra=self.losses)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        drop_frozen_weights(checkpoint, "teacher.")


@dataclass
class LoadedModels:
    """Teacher and student with their tokenizers."""

    teacher: Any
    teacher_tokenizer: Any
    student: Any
    student_tokenizer: Any
    init_report: dict[str, int] = field(default_factory=dict)


def load_models(config: DistillConfig) -> LoadedModels:
    """Teacher from `config.teacher`; student by copy + new tokenizer, or from its own config."""
    from ctd.models import load_tokenizer, to_byte_level

    teacher, teacher_tokenizer = load_model(config.teacher)
    if config.mode == "distill":
        student, student_tokenizer = load_model(config.student)
        return LoadedModels(teacher, teacher_tokenizer, student, student_tokenizer)
    student = copy.deepcopy(teacher).to(getattr(torch, config.student.dtype))
    student.requires_grad_(True)
    if config.student.tokenizer == BYTE_LEVEL:
        student_tokenizer = to_byte_level(teacher_tokenizer)
    elif config.student.tokenizer:
        student_tokenizer = load_tokenizer(
            config.student.tokenizer, trust_remote_code=config.student.trust_remote_code
        )
    else:
        raise ValueError("mode=transfer needs student.tokenizer (`bytes` or a tokenizer path)")
    report = init_student_embeddings(config, teacher_tokenizer, student, student_tokenizer)
    return LoadedModels(teacher, teacher_tokenizer, student, student_tokenizer, report)


def init_student_embeddings(
    config: DistillConfig, teacher_tokenizer: Any, student: Any, student_tokenizer: Any
) -> dict[str, int]:
    """Resize the copied student for its tokenizer by `config.student.init`; the counts."""
    from ctd.models import fvt_init_embeddings, fvt_mapping, load_causal_lm, load_tokenizer
    from ctd.models.loading import input_embedding_weight
    from ctd.models.transplant import (
        baseline_init_embeddings,
        omp_init_embeddings,
        transplant_plan,
    )

    init = config.student.init
    if init == "fvt":
        mapping = fvt_mapping(teacher_tokenizer, student_tokenizer)
        fvt_init_embeddings(student, teacher_tokenizer, student_tokenizer, mapping=mapping)
        return {str(method): count for method, count in mapping.counts.items()}
    if init != "omp":
        plan = transplant_plan(teacher_tokenizer, student_tokenizer)
        baseline_init_embeddings(
            student, teacher_tokenizer, student_tokenizer, init, seed=config.seed, plan=plan
        )
        return plan.counts
    assert config.student.donor is not None  # checked when the config loads
    donor = load_causal_lm(config.student.donor, dtype=getattr(torch, config.student.dtype))
    if load_tokenizer(config.student.donor).get_vocab() != student_tokenizer.get_vocab():
        raise ValueError(
            f"student.donor {config.student.donor} does not use student.tokenizer "
            f"{config.student.tokenizer}"
        )
    rows = int(input_embedding_weight(donor).shape[0])
    plan = transplant_plan(teacher_tokenizer, student_tokenizer, num_rows=rows)
    omp_init_embeddings(
        student, donor, teacher_tokenizer, student_tokenizer, plan=plan, progress=False
    )
    return plan.counts


def loss_setup_values(config: DistillConfig, models: LoadedModels) -> dict[str, Any]:
    """Constructor arguments the wirings derive from the models (only those the losses need)."""
    wanted = set().union(*(DISTILL_WIRINGS[loss.name].setup for loss in config.losses))
    values: dict[str, Any] = {}
    if {"student_dim", "teacher_dim"} & wanted:
        values["student_dim"] = hidden_size(models.student)
        values["teacher_dim"] = hidden_size(models.teacher)
    if "student_to_teacher" in wanted:
        values["student_to_teacher"] = mined_vocabulary_map(models)
    return values


def mined_vocabulary_map(models: LoadedModels) -> Tensor:
    """MinED's student -> teacher token map (minimum edit distance), as a (V_student,) tensor.

    Cached under `~/.cache/ctd`, keyed by both tokenizers.
    """
    from pathlib import Path

    from ctd.alignment.vocab_map import mined_vocab_map

    mapping = mined_vocab_map(
        models.student_tokenizer,
        models.teacher_tokenizer,
        student_vocab_size=num_embeddings(models.student),
        cache_dir=Path.home() / ".cache" / "ctd",
    )
    return torch.as_tensor(mapping, dtype=torch.long)


def build_module(config: DistillConfig, models: LoadedModels) -> DistillationModule:
    """The LightningModule for `config`."""
    losses = build_loss_modules(
        [(loss.name, loss.kwargs) for loss in config.losses],
        DISTILL_WIRINGS,
        loss_setup_values(config, models),
    )
    return DistillationModule(
        models.teacher,
        models.student,
        SideVocab.from_tokenizer(models.teacher_tokenizer, num_embeddings(models.teacher)),
        SideVocab.from_tokenizer(models.student_tokenizer, num_embeddings(models.student)),
        losses,
        {loss.name: loss.weight for loss in config.losses},
        loss_aggregation=config.loss_aggregation,
        optim=config.optim,
        max_steps=config.trainer.max_steps,
    )


def check_distill_config(config: DistillConfig) -> None:
    """What can be checked before any model is loaded: loss names and arguments."""
    if config.teacher.lora is not None:
        raise ValueError("teacher.lora: only the student trains LoRA adapters")
    check_losses(config.losses, DISTILL_WIRINGS, "distill")
    check_teacher_cache_config(config)
    if config.mode == "distill" and not config.student.name_or_path:
        raise ValueError("mode=distill needs student.name_or_path (the student's own model)")


def setup_distill(config: DistillConfig) -> PreparedRun:
    """Models, data and module for task `distill`; every bad input fails here."""
    models = load_models(config)
    if config.student.lora is not None:
        add_student_lora(models.student, config.student.lora)
    for name in ("teacher", "student"):
        tokenizer = getattr(models, f"{name}_tokenizer")
        if _uses_eos_as_space(config) and getattr(tokenizer, "eos_token_id", None) is None:
            raise ValueError(f"alm eos_as_space=true needs an EOS token; the {name}'s has none")
    datamodule = build_datamodule(
        config.data, models.teacher_tokenizer, models.student_tokenizer, seed=config.seed
    )
    module = build_module(config, models)
    if config.teacher.cache is not None:
        module.use_teacher_cache(
            open_teacher_cache(
                config.teacher.cache, config, models.teacher, models.teacher_tokenizer
            )
        )
    from ctd.models import export_pretrained

    export = functools.partial(export_pretrained, models.student, models.student_tokenizer)
    return PreparedRun(module, datamodule, export, report={"fvt_init": models.init_report})


def add_student_lora(student: Any, lora: LoRAConfig) -> None:
    """Inject `student.lora`'s adapters into the student (`ctd.models.lora.add_lora`)."""
    from ctd.models.lora import add_lora

    add_lora(
        student,
        r=lora.r,
        alpha=lora.alpha,
        target_modules=lora.target_modules,
        dropout=lora.dropout,
        train_embeddings=lora.train_embeddings,
    )


def _uses_eos_as_space(config: DistillConfig) -> bool:
    return any(loss.name == "alm" and loss.kwargs.get("eos_as_space") for loss in config.losses)
