"""Plain functions shared by the trainers: forward passes, optimizer, schedule, parameter picks."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ctd.config import OptimConfig
from ctd.losses import approx_gradmag_preserve_mag, token_logprobs_from_hidden
from ctd.trainers.wiring import HEAD_NEEDS, Need, SideOutputs, stack_weighted

if TYPE_CHECKING:
    import lightning as L


class NonFiniteOutputs(FloatingPointError):
    """A forward pass produced NaN or inf (the message names what); see `NonFiniteGuard`."""


def causal_lm_forward(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    needs: Collection[Need],
    *,
    space_token_mask: Tensor | None = None,
    eos_token_id: int | None = None,
    side: str = "model",
) -> SideOutputs:
    """Run a Hugging Face causal LM to its final hidden state and compute exactly `needs`.

    Token, space and EOS log-probabilities come from `token_logprobs_from_hidden`, chunked over
    positions; the (B, T, V) logits are materialised only for `Need.LOGITS`.

    Shapes:
        input_ids, attention_mask (B, T) -> SideOutputs.

    A side without an EOS token gets no `Need.EOS_LOGPROBS` (a task that reads it checks for EOS
    at set-up, e.g. ALM's `eos_as_space`).

    Raises:
        ValueError: `Need.SPACE_LOGPROBS` without `space_token_mask`.
        NonFiniteOutputs: NaN or inf in the final hidden states (named by `side`); the
            trainers' `NonFiniteGuard` then stops or skips the step.
    """
    if Need.SPACE_LOGPROBS in needs and space_token_mask is None:
        raise ValueError("space log-probs need the side's space_token_mask")
    base_output = model.base_model(input_ids=input_ids, attention_mask=attention_mask)  # type: ignore[operator]
    hidden = base_output.last_hidden_state  # (B, T, d)
    if not bool(torch.isfinite(hidden).all()):
        raise NonFiniteOutputs(f"{side} final hidden states")
    lm_head = model.get_output_embeddings()  # type: ignore[operator]
    softcap = getattr(model.config, "final_logit_softcapping", None)
    values: dict[Need, Any] = {}
    if Need.HIDDEN in needs:
        values[Need.HIDDEN] = hidden
    if HEAD_NEEDS & set(needs):
        head = token_logprobs_from_hidden(
            hidden,
            lm_head.weight,
            input_ids,
            lm_head_bias=lm_head.bias,
            logit_softcap=softcap,
            space_token_mask=space_token_mask if Need.SPACE_LOGPROBS in needs else None,
            eos_token_id=eos_token_id if Need.EOS_LOGPROBS in needs else None,
        )
        values[Need.TOKEN_LOGPROBS] = head.logprobs
        if head.space_logprobs is not None:
            values[Need.SPACE_LOGPROBS] = head.space_logprobs
        if head.eos_logprobs is not None:
            values[Need.EOS_LOGPROBS] = head.eos_logprobs
    if Need.LOGITS in needs:
        logits = lm_head(hidden)  # (B, T, V)
        values[Need.LOGITS] = torch.tanh(logits / softcap) * softcap if softcap else logits
    if Need.EMBEDDINGS in needs:
        input_embeddings = model.get_input_embeddings().weight  # type: ignore[operator]
        values[Need.EMBEDDINGS] = (input_embeddings, lm_head.weight)
    return SideOutputs(input_ids, values)


def combine_losses(
    values: Mapping[str, Tensor],
    weights: Mapping[str, float],
    *,
    aggregation: str,
    student: nn.Module,
    reduce_gradient: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """One training objective from the named losses, by `aggregation` (`loss_aggregation`).

    `gradmag_preserve_mag` with two or more losses: GradMag over them on the student's last
    layer (`approx_gradmag_preserve_mag`, `reduce_gradient` as there); otherwise the weighted
    sum (`stack_weighted`).

    Shapes: values: name -> () -> ().
    """
    if aggregation == "gradmag_preserve_mag" and len(values) > 1:
        return approx_gradmag_preserve_mag(
            list(values.values()),
            last_layer_parameters(student),
            reduce_gradient=reduce_gradient,
        )
    return stack_weighted(values, weights)


def log_training_losses(
    module: L.LightningModule, values: Mapping[str, Tensor], total: Tensor, batch_size: int
) -> None:
    """Log every loss as `train/<name>` and the objective as `train/loss` (in the progress bar)."""
    module.log_dict({f"train/{k}": v.detach() for k, v in values.items()}, batch_size=batch_size)
    module.log("train/loss", total.detach(), prog_bar=True, batch_size=batch_size)


def drop_frozen_weights(checkpoint: dict[str, Any], prefix: str) -> None:
    """Remove the state-dict entries under `prefix` (a frozen model's, e.g. "teacher."), in place.

    For `on_save_checkpoint`: checkpoints hold the trained model only.
    """
    state = checkpoint["state_dict"]
    for key in [k for k in state if k.startswith(prefix)]:
        del state[key]


def last_layer_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the last transformer block (what GradMag measures gradients on)."""
    blocks = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no list of transformer blocks")
    largest = max(blocks, key=len)
    return [p for p in largest[-1].parameters() if p.requires_grad]


def embedding_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Input and output embedding matrices (tied ones once)."""
    found: dict[int, nn.Parameter] = {}
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, getter)()
        if module is not None:
            found[id(module.weight)] = module.weight
    return list(found.values())


def build_optimizer(
    model: nn.Module, optim: OptimConfig, extra: nn.Module | None = None
) -> torch.optim.Optimizer:
    """AdamW with three groups: embeddings, decayed matrices, and undecayed norms/biases.

    `extra` holds trainable loss parameters (projections), optimised like the model's.
    """
    embeddings = {id(p) for p in embedding_parameters(model)}
    groups: dict[str, list[nn.Parameter]] = {"embeddings": [], "decay": [], "no_decay": []}
    parameters = list(model.parameters()) + (list(extra.parameters()) if extra else [])
    for parameter in parameters:
        if not parameter.requires_grad:
            continue
        if id(parameter) in embeddings:
            groups["embeddings"].append(parameter)
        elif parameter.ndim >= 2:
            groups["decay"].append(parameter)
        else:
            groups["no_decay"].append(parameter)
    embedding_lr = optim.embedding_lr if optim.embedding_lr is not None else optim.lr
    param_groups = [
        {"params": groups["embeddings"], "lr": embedding_lr, "weight_decay": 0.0},
        {"params": groups["decay"], "lr": optim.lr, "weight_decay": optim.weight_decay},
        {"params": groups["no_decay"], "lr": optim.lr, "weight_decay": 0.0},
    ]
    param_groups = [group for group in param_groups if group["params"]]
    return torch.optim.AdamW(param_groups, betas=(optim.beta1, optim.beta2))


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to `min_ratio`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: how a teacher is held."""
    model.eval()
    model.requires_grad_(False)
    return model


def optimizer_and_schedule(
    model: nn.Module, optim: OptimConfig, max_steps: int, extra: nn.Module | None = None
) -> dict[str, Any]:
    """What `configure_optimizers` returns: AdamW (`build_optimizer`) + per-step warm-up/cosine."""
    optimizer = build_optimizer(model, optim, extra=extra)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: warmup_cosine(
            step,
            warmup_steps=optim.warmup_steps,
            total_steps=max_steps,
            min_ratio=optim.min_lr_ratio,
        ),
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
