"""Memory-bounded TVD++ from the draft's final hidden states (no (B, T, V) draft logits).

The loss is a scalar, so the gradient is formed chunk by chunk during the forward pass (in closed
form, ``d/dz = -(c - q sum(c)) / temperature``) and only scaled in the backward pass.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from ctd.losses._checks import check_ndim, check_no_nan, check_shape
from ctd.losses._chunked_head import default_chunk_size
from ctd.losses.tvdpp import TVDPP_NORMALIZATIONS, tvdpp_coefficients


class _ChunkedTVDPP(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        hidden: Tensor,  # (N, d): scored rows only
        weight: Tensor,  # (V, d)
        bias: Tensor | None,  # (V,)
        target_logits: Tensor,  # (M, V): all rows, read at ``rows`` chunk by chunk
        rows_index: Tensor,  # (N,) long: which target rows the hidden rows are
        row_weights: Tensor,  # (N,): 1 / number of scored rows
        options: tuple[str, float, float, int],
    ) -> Tensor:
        normalization, temperature, eps, chunk_size = options
        dtype = torch.promote_types(weight.dtype, torch.float32)
        grad_hidden = torch.zeros(hidden.shape, dtype=dtype, device=hidden.device)  # (N, d)
        grad_weight = torch.zeros(weight.shape, dtype=dtype, device=weight.device)  # (V, d)
        grad_bias = torch.zeros(weight.shape[0], dtype=dtype, device=weight.device)  # (V,)
        loss = torch.zeros((), dtype=dtype, device=hidden.device)
        reward_mean = torch.zeros((), dtype=dtype, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            logits = F.linear(hidden[rows], weight, bias).to(dtype)  # (n, V)
            draft = torch.softmax(logits.div_(temperature) if temperature != 1 else logits, dim=-1)
            del logits
            target = target_logits.index_select(0, rows_index[rows]).to(dtype)  # (n, V)
            target = torch.softmax(target.div_(temperature) if temperature != 1 else target, -1)
            weights = row_weights[rows].to(dtype)  # (n,)
            loss += ((target - draft).abs_().sum(-1) * weights).sum() * 0.5
            if normalization == "batch":
                reward_mean += (torch.where(target > draft, draft, 0.0).sum(-1) * weights).sum()
            coef = tvdpp_coefficients(draft, target, normalization, eps)  # (n, V)
            del target
            grad = draft.mul_(coef.sum(-1, keepdim=True)).sub_(coef)  # (n, V): d surrogate / dz
            del coef
            grad.mul_((weights / temperature).unsqueeze(-1))
            grad_hidden[rows] = grad.to(weight.dtype) @ weight
            grad_weight.addmm_(grad.t(), hidden[rows].to(dtype))
            grad_bias += grad.sum(0)
        if normalization == "batch":  # pooled q-weighted mean reward -> Bernoulli std
            scale = 1.0 / (_pooled_std(reward_mean) + eps)
            grad_hidden, grad_weight, grad_bias = (
                g * scale for g in (grad_hidden, grad_weight, grad_bias)
            )
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.has_bias = bias is not None
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        grads = ctx.saved_tensors  # (N, d), (V, d), (V,)
        hidden_dtype, weight_dtype = ctx.dtypes
        if bool(grad_output != 1):  # the usual case (loss.backward()) needs no (V, d) copy
            grads = tuple(g * grad_output for g in grads)
        grad_hidden, grad_weight, grad_bias = grads
        return (
            grad_hidden.to(hidden_dtype),
            grad_weight.to(weight_dtype),
            grad_bias.to(weight_dtype) if ctx.has_bias else None,
            None,
            None,
            None,
            None,
        )


def _pooled_std(mean_reward: Tensor) -> Tensor:
    """Bernoulli standard deviation from the pooled q-weighted mean reward."""
    return (mean_reward * (1 - mean_reward)).clamp_min(0).sqrt()


def tvdpp_loss_from_hidden(
    draft_hidden: Tensor,
    draft_lm_head_weight: Tensor,
    target_logits: Tensor,
    mask: Tensor | None = None,
    *,
    draft_lm_head_bias: Tensor | None = None,
    normalization: str = "position",
    temperature: float = 1.0,
    eps: float = 1e-6,
    chunk_size: int | None = None,
) -> Tensor:
    """Memory-bounded :func:`~ctd.losses.tvdpp.tvdpp_loss` from the draft's final hidden states.

    Same value and gradient as ``tvdpp_loss(draft_hidden @ W.T + b, target_logits, mask, ...)``
    while keeping only ``chunk_size`` rows of draft logits alive; unscored rows are skipped.

    Shapes: draft_hidden (B, T, d), draft_lm_head_weight (V, d), target_logits (B, T, V),
    mask (B, T) -> ().
    Reference: Goel et al. 2024, arXiv 2403.00858 (TVD++).
    """
    check_ndim("draft_hidden", draft_hidden, 3)
    check_shape("draft_lm_head_weight", draft_lm_head_weight, (None, draft_hidden.shape[-1]))
    vocab = draft_lm_head_weight.shape[0]
    check_shape("target_logits", target_logits, (*draft_hidden.shape[:2], vocab))
    check_no_nan("draft_hidden", draft_hidden)
    check_no_nan("target_logits", target_logits)
    if normalization not in TVDPP_NORMALIZATIONS:
        raise ValueError(
            f"unknown normalization {normalization!r}; choose from {TVDPP_NORMALIZATIONS}"
        )
    if mask is None:
        mask = torch.ones(draft_hidden.shape[:2], dtype=torch.bool, device=draft_hidden.device)
    check_shape("mask", mask, draft_hidden.shape[:2])
    rows = mask.to(torch.bool).reshape(-1).nonzero().squeeze(-1)  # (N,) scored rows
    hidden = draft_hidden.reshape(-1, draft_hidden.shape[-1]).index_select(0, rows)  # (N, d)
    targets = target_logits.detach().reshape(-1, vocab)  # (B*T, V), a view: no copy
    dtype = torch.promote_types(draft_lm_head_weight.dtype, torch.float32)
    row_weights = torch.full(
        (rows.numel(),), 1.0 / max(rows.numel(), 1), dtype=dtype, device=hidden.device
    )
    size = chunk_size if chunk_size is not None else default_chunk_size(vocab)
    options = (normalization, temperature, eps, size)
    loss: Tensor = _ChunkedTVDPP.apply(  # type: ignore[no-untyped-call]
        hidden, draft_lm_head_weight, draft_lm_head_bias, targets, rows, row_weights, options
    )
    return loss
