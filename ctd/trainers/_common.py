"""Plain functions shared by the trainers: forward passes, optimizer, schedule, parameter picks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ctd.config import OptimConfig
from ctd.losses import TokenLogprobs, token_logprobs_from_hidden


@dataclass
class SideOutputs:
    """What one side's forward pass yields for the losses.

    Shapes:
        token_logprobs fields (B, T); hidden (B, T, d); logits (B, T, V) only when asked for.
    """

    token_logprobs: TokenLogprobs
    hidden: Tensor
    logits: Tensor | None
    input_ids: Tensor
    input_embedding_weight: Tensor
    output_embedding_weight: Tensor


def causal_lm_forward(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    space_token_mask: Tensor | None,
    eos_token_id: int | None,
    with_logits: bool,
) -> SideOutputs:
    """Run a Hugging Face causal LM to its final hidden state and score the observed tokens.

    The (B, T, V) logits are never materialised unless `with_logits`: token log-probabilities come
    from `token_logprobs_from_hidden`, chunked over positions.

    Shapes:
        input_ids, attention_mask (B, T) -> SideOutputs.
    """
    base_output = model.base_model(input_ids=input_ids, attention_mask=attention_mask)  # type: ignore[operator]
    hidden = base_output.last_hidden_state  # (B, T, d)
    lm_head = model.get_output_embeddings()  # type: ignore[operator]
    softcap = getattr(model.config, "final_logit_softcapping", None)
    token_logprobs = token_logprobs_from_hidden(
        hidden,
        lm_head.weight,
        input_ids,
        lm_head_bias=lm_head.bias,
        logit_softcap=softcap,
        space_token_mask=space_token_mask,
        eos_token_id=eos_token_id,
    )
    logits = None
    if with_logits:
        logits = lm_head(hidden)  # (B, T, V)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
    return SideOutputs(
        token_logprobs=token_logprobs,
        hidden=hidden,
        logits=logits,
        input_ids=input_ids,
        input_embedding_weight=model.get_input_embeddings().weight,  # type: ignore[operator]
        output_embedding_weight=lm_head.weight,
    )


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
