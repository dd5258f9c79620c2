"""Task `drafter`: train a speculative-decoding drafter against its frozen target, same tokenizer.

The target and the drafter read the same token ids (one tokenizer), so every loss compares the
two next-token distributions position by position, with the target's computed online (no cache).
Data: the target's own answers (`ctd generate`), rendered with the chat template; only the
answer positions count. Losses: `tvdpp` (default; Goel et al. 2024, arXiv 2403.00858, memory-
bounded on the drafter side: its (B, T, V) logits are never materialised), `kl`, `reverse_kl`,
`tvd` and `sft` (cross-entropy on the generated tokens). Validation logs the drafter's expected
acceptance rate alpha = 1 - TVD(p, q) (Leviathan et al. 2023) and its greedy counterpart.

A drafter with its own tokenizer is trained by task `distill` with `mode: distill` and ALM
(`configs/drafter/gemma3_smollm2_alm.yaml`).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ctd.alignment import CrossTokenizerBatch
from ctd.config import DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig
from ctd.losses import TVDPPLoss, tvd_loss, tvdpp_loss_from_hidden
from ctd.trainers._common import causal_lm_forward, freeze, optimizer_and_schedule
from ctd.trainers.builders import build_datamodule, load_model
from ctd.trainers.distill_wiring import DISTILL_WIRINGS
from ctd.trainers.task import PreparedRun
from ctd.trainers.wiring import (
    LossWiring,
    Need,
    SideOutputs,
    WiringTable,
    build_loss_modules,
    check_losses,
    prediction_mask,
    side_needs,
)

warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")

DRAFTER_TASK = "drafter"
DRAFTER_LENGTH = 256
"""Default context of target and drafter (one tokenizer, so one length)."""


@dataclass
class DrafterConfig(RunConfig):
    """Task `drafter`: a same-tokenizer drafter trained on the target's distributions."""

    task: str = DRAFTER_TASK
    target: ModelConfig = field(default_factory=ModelConfig)
    """The frozen target (the model speculative decoding will verify with)."""
    drafter: ModelConfig = field(default_factory=ModelConfig)
    """The drafter to train (e.g. `ctd make-drafter`); it must use the target's tokenizer."""
    loss: LossConfig = field(default_factory=lambda: LossConfig(name="tvdpp"))
    """`tvdpp` (default), `kl`, `reverse_kl`, `tvd` or `sft`; `kwargs` go to its module."""
    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            max_teacher_length=DRAFTER_LENGTH, max_student_length=DRAFTER_LENGTH
        )
    )
    """Generated answers (`ctd generate` output, JSONL with `messages`); teacher = target."""
    optim: OptimConfig = field(default_factory=OptimConfig)


def _tvdpp(
    loss: nn.Module, batch: CrossTokenizerBatch, target: SideOutputs, drafter: SideOutputs
) -> Tensor:
    """TVD++ from the drafter's hidden states against the target's full logits."""
    assert isinstance(loss, TVDPPLoss)
    _, head_weight = drafter[Need.EMBEDDINGS]
    target_logits = target[Need.LOGITS]  # (B, T, V_target)
    vocab = min(int(head_weight.shape[0]), int(target_logits.shape[-1]))
    return tvdpp_loss_from_hidden(
        drafter[Need.HIDDEN],
        head_weight[:vocab],
        target_logits[..., :vocab],
        prediction_mask(batch.student_loss_mask),
        normalization=loss.normalization,
        temperature=loss.temperature,
        eps=loss.eps,
    )


DRAFTER_WIRINGS: WiringTable = {
    "tvdpp": LossWiring(
        _tvdpp, frozenset({Need.HIDDEN, Need.EMBEDDINGS}), frozenset({Need.LOGITS})
    ),
    **{name: DISTILL_WIRINGS[name] for name in ("kl", "reverse_kl", "tvd", "sft")},
}
"""The drafter's losses; all but `tvdpp` are fed exactly as in task `distill`."""

SCORING = frozenset({Need.LOGITS})


def acceptance_metrics(
    drafter_logits: Tensor, target_logits: Tensor, mask: Tensor
) -> dict[str, Tensor]:
    """Masked means of TVD(p, q), alpha = 1 - TVD and greedy alpha = 1{argmax q = argmax p}.

    Shapes: drafter_logits (B, T, V), target_logits (B, T, V), mask (B, T) -> scalars.
    Reference: Leviathan et al. 2023, arXiv 2211.17192 (acceptance = 1 - TVD).
    """
    tvd = tvd_loss(drafter_logits, target_logits, mask)
    same = (drafter_logits.argmax(-1) == target_logits.argmax(-1)).to(tvd.dtype)  # (B, T)
    weights = mask.to(tvd.dtype)
    greedy = (same * weights).sum() / weights.sum().clamp_min(1)
    return {"tvd": tvd, "alpha": 1 - tvd, "greedy_alpha": greedy}


class DrafterModule(L.LightningModule):
    """Train `drafter` to match the frozen `target`'s next-token distributions.

    Args:
        target: the frozen causal LM (kept out of checkpoints).
        drafter: the trainable causal LM on the target's tokenizer.
        loss_name: the name of `loss` in `DRAFTER_WIRINGS`.
        loss: the loss module (`ctd.losses.LOSSES[loss_name]`).
        optim: optimizer and schedule settings.
        max_steps: total steps, for the schedule.
    """

    def __init__(
        self,
        target: nn.Module,
        drafter: nn.Module,
        loss_name: str,
        loss: nn.Module,
        *,
        optim: OptimConfig,
        max_steps: int,
    ) -> None:
        super().__init__()
        self.target = freeze(target)
        self.drafter = drafter.train()
        self.loss_name = loss_name
        self.loss = loss
        self.optim = optim
        self.max_steps = max_steps
        self.target_needs, self.drafter_needs = side_needs(DRAFTER_WIRINGS, [loss_name])
        self.strict_loading = False  # checkpoints hold the drafter only

    def forward_both(
        self,
        batch: CrossTokenizerBatch,
        target_needs: frozenset[Need],
        drafter_needs: frozenset[Need],
    ) -> tuple[SideOutputs, SideOutputs]:
        """Target (no grad; skipped when nothing is needed) and drafter forward passes."""
        self.target.eval()
        target = SideOutputs(batch.teacher_input_ids, {})
        if target_needs:
            with torch.no_grad():
                target = causal_lm_forward(
                    self.target, batch.teacher_input_ids, batch.teacher_attention_mask, target_needs
                )
        drafter = causal_lm_forward(
            self.drafter, batch.student_input_ids, batch.student_attention_mask, drafter_needs
        )
        return target, drafter

    def training_step(self, batch: CrossTokenizerBatch, batch_idx: int) -> Tensor:
        """One step: the forward passes the loss needs and the loss."""
        target, drafter = self.forward_both(batch, self.target_needs, self.drafter_needs)
        value = DRAFTER_WIRINGS[self.loss_name].call(self.loss, batch, target, drafter)
        size = batch.student_input_ids.shape[0]
        self.log(f"train/{self.loss_name}", value.detach(), batch_size=size)
        self.log("train/loss", value.detach(), prog_bar=True, batch_size=size)
        return value

    def validation_step(self, batch: CrossTokenizerBatch, batch_idx: int) -> None:
        """TVD(p, q), alpha and greedy alpha on the answer positions."""
        with torch.no_grad():
            target, drafter = self.forward_both(batch, SCORING, SCORING)
            target_logits, drafter_logits = target[Need.LOGITS], drafter[Need.LOGITS]
            vocab = min(target_logits.shape[-1], drafter_logits.shape[-1])
            values = acceptance_metrics(
                drafter_logits[..., :vocab],
                target_logits[..., :vocab],
                prediction_mask(batch.student_loss_mask),
            )
        size = batch.student_input_ids.shape[0]
        self.log_dict({f"val/{k}": v for k, v in values.items()}, batch_size=size)

    def configure_optimizers(self):  # type: ignore[no-untyped-def]  # noqa: D102
        return optimizer_and_schedule(self.drafter, self.optim, self.max_steps)

    def on_save_checkpoint(self, checkpoint: dict) -> None:  # type: ignore[type-arg]  # noqa: D102
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("target.")]:
            del state[key]


def check_drafter_config(config: DrafterConfig) -> None:
    """What can be checked before any model is loaded: the loss, the models, the lengths."""
    check_losses([config.loss], DRAFTER_WIRINGS, DRAFTER_TASK)
    for role in ("target", "drafter"):
        if not getattr(config, role).name_or_path:
            raise ValueError(f"task drafter needs {role}.name_or_path")
    if config.data.max_teacher_length != config.data.max_student_length:
        raise ValueError(
            "task drafter: target and drafter share one tokenizer, so data.max_teacher_length "
            f"({config.data.max_teacher_length}) must equal data.max_student_length "
            f"({config.data.max_student_length})"
        )


def check_same_tokenizer(target_tokenizer: Any, drafter_tokenizer: Any) -> None:
    """A same-tokenizer drafter must have exactly the target's vocabulary.

    Raises:
        ValueError: naming how many tokens differ and what to use instead.
    """
    target_vocab, drafter_vocab = target_tokenizer.get_vocab(), drafter_tokenizer.get_vocab()
    if target_vocab != drafter_vocab:
        differing = len(set(target_vocab.items()) ^ set(drafter_vocab.items()))
        raise ValueError(
            f"the drafter's tokenizer is not the target's ({len(drafter_vocab)} vs "
            f"{len(target_vocab)} tokens, {differing} (token, id) pairs differ); task drafter "
            "trains same-tokenizer drafters, use task distill with mode=distill and loss alm "
            "for a drafter with its own tokenizer"
        )


def setup_drafter(config: DrafterConfig) -> PreparedRun:
    """Models, data and module for task `drafter`; every bad input fails here."""
    from ctd.models import export_pretrained

    target, target_tokenizer = load_model(config.target)
    drafter, drafter_tokenizer = load_model(config.drafter)
    check_same_tokenizer(target_tokenizer, drafter_tokenizer)
    if config.loss.name == "tvdpp" and getattr(drafter.config, "final_logit_softcapping", None):
        raise ValueError("loss tvdpp works on hidden states and needs a drafter without softcap")
    drafter.requires_grad_(True)
    datamodule = build_datamodule(
        config.data, target_tokenizer, drafter_tokenizer, seed=config.seed
    )
    (loss,) = build_loss_modules(
        [(config.loss.name, config.loss.kwargs)], DRAFTER_WIRINGS, {}
    ).values()
    module = DrafterModule(
        target,
        drafter,
        config.loss.name,
        loss,
        optim=config.optim,
        max_steps=config.trainer.max_steps,
    )
    export = functools.partial(export_pretrained, drafter, drafter_tokenizer)
    return PreparedRun(module, datamodule, export)
