"""Memory-bounded TVD++ from the draft's final hidden states (no (B, T, V) draft logits).

The loss is a scalar, so the gradient is formed chunk by chunk during the forward pass (in closed
form, ``d/dz = (q sum(c) - c) / temperature`` for surrogate weights ``c``) and only scaled in the
backward pass: three matmuls per chunk in all, as many as the naive version's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from ctd.losses._checks import check_ndim, check_no_nan, check_shape
from ctd.losses.tvdpp import TVDPP_NORMALIZATIONS, tvdpp_coefficients

_CHUNK_BYTES = 1 << 25  # one (rows, V) buffer per chunk: 32 MiB; about two are alive at a time


def tvdpp_chunk_size(vocab_size: int, element_size: int = 4) -> int:
    """Rows per chunk such that one (rows, V) buffer holds about 32 MiB."""
    return max(1, _CHUNK_BYTES // (vocab_size * element_size))


def _softmax_(scores: Tensor, temperature: float) -> Tensor:
    """Softmax over the last axis of ``scores / temperature``, in place on CPU.

    The CPU kernel works row by row and was checked bit-identical in place; elsewhere (CUDA not
    yet checked here) a new tensor is returned.
    """
    if temperature != 1:
        scores.div_(temperature)
    if scores.device.type != "cpu":
        return torch.softmax(scores, -1)
    out: Tensor = torch.ops.aten._softmax.out(scores, -1, False, out=scores)
    return out


def _target_probs(
    target_logits: Tensor,
    rows_index: Tensor | None,
    rows: slice,
    temperature: float,
    dtype: torch.dtype,
) -> Tensor:
    """Target softmax of one chunk as a new tensor; ``rows_index`` None means all rows in order.

    Reads the rows by slicing when possible: CPU ``index_select`` of wide rows is slow.
    Shapes: target_logits (M, V), rows_index (N,) -> (n, V).
    """
    if rows_index is None and temperature == 1:
        return torch.softmax(target_logits[rows], -1, dtype=dtype)  # one pass, no extra copy
    picked = target_logits[rows] if rows_index is None else target_logits[rows_index[rows]]
    return _softmax_(picked.to(dtype, copy=rows_index is None), temperature)


def _chunk_grad(
    draft: Tensor, target: Tensor, normalization: str, eps: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-row TVD, q-weighted mean reward, and the surrogate's logit gradient up to a row scale.

    ``target`` is overwritten with the gradient (``draft`` is kept for ``"vocab_unweighted"``).
    Returns ``(tvd, mean_reward, grad, row_scale)``: the gradient w.r.t. the tempered logits
    is ``grad * row_scale[:, None]``.

    Shapes: draft (n, V), target (n, V) -> (n,), (n,), (n, V), (n,).
    """
    if normalization == "vocab_unweighted":  # rare: the general form
        mean = torch.where(target > draft, draft, 0.0).sum(-1)  # (n,)
        coef = tvdpp_coefficients(draft, target, normalization, eps)  # (n, V)
        tvd = target.sub_(draft).abs_().sum(-1).mul_(0.5)
        grad = draft.mul_(coef.sum(-1, keepdim=True)).sub_(coef)  # q sum(c) - c
        return tvd, mean, grad, torch.ones_like(tvd)
    diff = target.sub_(draft)  # (n, V): p - q, in place
    tvd = torch.linalg.vector_norm(diff, 1, -1).mul_(0.5)  # (n,)
    coef = diff.gt_(0).mul_(draft)  # (n, V): c = q 1{p > q}, in place
    mean = coef.sum(-1)  # (n,): mu = E_q r
    # q sum(c') - c' with c' = c ("none", "batch") or (c - q mu) / sigma ("position", sum 0)
    grad = coef.addcmul_(draft, mean.unsqueeze(-1), value=-1.0)  # c - q mu, in place
    scale = torch.full_like(tvd, -1.0)
    if normalization == "position":
        scale = scale.div_((mean * (1 - mean)).clamp_min(0).sqrt() + eps)
    return tvd, mean, grad, scale


class _ChunkedTVDPP(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        hidden: Tensor,  # (N, d): scored rows only
        weight: Tensor,  # (V, d)
        bias: Tensor | None,  # (V,)
        target_logits: Tensor,  # (M, V): all rows, read at ``rows`` chunk by chunk
        rows_index: Tensor | None,  # (N,) long: which target rows the hidden rows are; None: all
        row_weights: Tensor,  # (N,): 1 / number of scored rows
        options: tuple[str, float, float, int],
    ) -> Tensor:
        normalization, temperature, eps, chunk_size = options
        dtype = torch.promote_types(weight.dtype, torch.float32)
        grad_hidden = torch.empty(hidden.shape, dtype=dtype, device=hidden.device)  # (N, d)
        grad_weight = torch.zeros(weight.shape, dtype=dtype, device=weight.device)  # (V, d)
        grad_bias = None
        if bias is not None:
            grad_bias = torch.zeros(weight.shape[0], dtype=dtype, device=weight.device)  # (V,)
        loss = torch.zeros((), dtype=dtype, device=hidden.device)
        reward_mean = torch.zeros((), dtype=dtype, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            draft = _softmax_(F.linear(hidden[rows], weight, bias).to(dtype), temperature)  # (n, V)
            target = _target_probs(target_logits, rows_index, rows, temperature, dtype)  # (n, V)
            tvd, mean, grad, scale = _chunk_grad(draft, target, normalization, eps)
            del draft, target
            weights = row_weights[rows].to(dtype)  # (n,)
            loss += (tvd * weights).sum()
            reward_mean += (mean * weights).sum()
            scale = scale.mul_(weights / temperature)  # (n,): applied after the matmuls
            grad_hidden[rows] = (
                torch.mm(grad.to(weight.dtype), weight).to(dtype).mul_(scale[:, None])
            )
            grad_weight.addmm_(grad.t(), hidden[rows].to(dtype) * scale[:, None])  # (V, d)
            if grad_bias is not None:
                grad_bias.addmv_(grad.t(), scale)
        grads = [grad_hidden, grad_weight] + ([] if grad_bias is None else [grad_bias])
        if normalization == "batch":  # pooled q-weighted mean reward -> Bernoulli std
            scale_all = 1.0 / (_pooled_std(reward_mean) + eps)
            for g in grads:
                g.mul_(scale_all)
        ctx.save_for_backward(*grads)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        grads = ctx.saved_tensors  # (N, d), (V, d), (V,) if there is a bias
        hidden_dtype, weight_dtype = ctx.dtypes
        if bool(grad_output != 1):  # the usual case (loss.backward()) needs no (V, d) copy
            grads = tuple(g * grad_output for g in grads)
        grad_bias = grads[2].to(weight_dtype) if len(grads) == 3 else None
        return (
            grads[0].to(hidden_dtype),
            grads[1].to(weight_dtype),
            grad_bias,
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
    while keeping only ``chunk_size`` rows of draft logits alive; unscored rows are skipped. The
    default ``chunk_size`` keeps each (rows, V) buffer near 32 MiB (about two are alive at once);
    besides them the function holds the (V, d) weight gradient.

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
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if mask is None:
        mask = torch.ones(draft_hidden.shape[:2], dtype=torch.bool, device=draft_hidden.device)
    check_shape("mask", mask, draft_hidden.shape[:2])
    rows = mask.to(torch.bool).reshape(-1).nonzero().squeeze(-1)  # (N,) scored rows
    hidden = draft_hidden.reshape(-1, draft_hidden.shape[-1]).index_select(0, rows)  # (N, d)
    rows_index = None if rows.numel() == mask.numel() else rows  # all rows: read targets by slice
    targets = target_logits.detach().reshape(-1, vocab)  # (B*T, V), a view: no copy
    dtype = torch.promote_types(draft_lm_head_weight.dtype, torch.float32)
    row_weights = torch.full(
        (rows.numel(),), 1.0 / max(rows.numel(), 1), dtype=dtype, device=hidden.device
    )
    size = chunk_size if chunk_size is not None else tvdpp_chunk_size(vocab, dtype.itemsize)
    options = (normalization, temperature, eps, size)
    loss: Tensor = _ChunkedTVDPP.apply(  # type: ignore[no-untyped-call]
        hidden, draft_lm_head_weight, draft_lm_head_bias, targets, rows_index, row_weights, options
    )
    return loss
