"""Chunked LM head: per-token log-probs without materialising (N, V) logits.

Forward computes logits ``chunk_size`` rows at a time and keeps only per-row statistics; backward
recomputes each chunk's logits and forms the exact gradient in closed form. When all (N, V)
logits fit in ``max_kept_logits`` values (by default 64 Mi, 256 MiB in float32: a CPU-sized batch
such as 320 rows of a 151k vocabulary), forward keeps them instead and backward skips the
recompute, one (N, d) x (d, V) matmul of the four.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

_CHUNK_ELEMENTS = 1 << 22  # logits per chunk: 4 Mi values = 16 MiB in float32
DEFAULT_MAX_KEPT_LOGITS = 1 << 26  # logits kept for backward: 64 Mi values = 256 MiB in float32


def default_chunk_size(vocab_size: int) -> int:
    """Rows per chunk such that one chunk of logits holds about 4 Mi values."""
    return max(1, _CHUNK_ELEMENTS // vocab_size)


def _chunk_scores(
    hidden: Tensor, weight: Tensor, bias: Tensor | None, softcap: float | None, dtype: torch.dtype
) -> tuple[Tensor, Tensor | None]:
    """Soft-capped logits of one chunk, and tanh(logits / cap) for the backward pass."""
    logits = F.linear(hidden, weight, bias).to(dtype)  # (n, V)
    if softcap is None:
        return logits, None
    tanh = logits.div_(softcap).tanh_()  # (n, V), in place
    return tanh * softcap, tanh


class _ChunkedHeadLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        hidden: Tensor,  # (N, d)
        weight: Tensor,  # (V, d)
        bias: Tensor | None,  # (V,)
        targets: Tensor,  # (N,) long
        space_mask: Tensor | None,  # (V,) bool
        eos_token_id: int | None,
        softcap: float | None,
        chunk_size: int,
        max_kept_logits: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        dtype = torch.promote_types(weight.dtype, torch.float32)
        num_rows = hidden.shape[0]
        kept = None  # (N, V): the soft-capped logits, when they fit in max_kept_logits
        if num_rows * weight.shape[0] <= max_kept_logits:
            kept = torch.empty(num_rows, weight.shape[0], dtype=dtype, device=hidden.device)
        picked = torch.zeros(num_rows, dtype=dtype, device=hidden.device)  # (N,)
        space, eos = torch.zeros_like(picked), torch.zeros_like(picked)  # (N,), (N,)
        lse_all, space_lse_all = torch.zeros_like(picked), torch.zeros_like(picked)
        space_log_mask = None
        if space_mask is not None:
            space_log_mask = torch.zeros(space_mask.shape, dtype=dtype, device=hidden.device)
            space_log_mask.masked_fill_(~space_mask.to(hidden.device), float("-inf"))  # (V,)
        for start in range(0, num_rows, chunk_size):
            rows = slice(start, start + chunk_size)
            scores, _ = _chunk_scores(hidden[rows], weight, bias, softcap, dtype)  # (n, V)
            if kept is not None:
                kept[rows] = scores
            lse = torch.logsumexp(scores, dim=-1)  # (n,)
            lse_all[rows] = lse
            picked[rows] = scores.gather(1, targets[rows, None]).squeeze(1) - lse
            if eos_token_id is not None:
                eos[rows] = scores[:, eos_token_id] - lse
            if space_log_mask is not None:
                space_lse = torch.logsumexp(scores.add_(space_log_mask), dim=-1)  # (n,)
                space_lse_all[rows] = space_lse
                space[rows] = space_lse - lse
        ctx.save_for_backward(
            hidden, weight, bias, targets, space_mask, lse_all, space_lse_all, kept
        )
        ctx.eos_token_id, ctx.softcap, ctx.chunk_size = eos_token_id, softcap, chunk_size
        return picked, space, eos

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        hidden, weight, bias, targets, space_mask, lse_all, space_lse_all, kept = ctx.saved_tensors
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        dtype = lse_all.dtype
        g_picked, g_space, g_eos = (g.to(dtype) for g in grads)  # 3 x (N,)
        if space_mask is None:
            g_space = torch.zeros_like(g_space)
        if ctx.eos_token_id is None:
            g_eos = torch.zeros_like(g_eos)
        g_all = g_picked + g_space + g_eos  # (N,): every output carries a -p term
        space_scale = g_space * torch.exp(lse_all - space_lse_all)  # (N,)
        space_float = None if space_mask is None else space_mask.to(dtype)  # (V,)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=dtype, device=weight.device)
        grad_bias = torch.zeros(weight.shape[0], dtype=dtype, device=weight.device)
        for start in range(0, hidden.shape[0], ctx.chunk_size):
            rows = slice(start, start + ctx.chunk_size)
            if kept is None:
                scores, tanh = _chunk_scores(hidden[rows], weight, bias, ctx.softcap, dtype)
            else:  # a copy: a retained graph (GradMag) runs backward more than once
                scores = kept[rows].clone()  # (n, V)
                tanh = None if ctx.softcap is None else scores / ctx.softcap
            grad = scores.sub_(lse_all[rows, None]).exp_()  # (n, V): probabilities, in place
            if space_float is None:
                grad.mul_(-g_all[rows, None])
            else:
                grad.mul_(torch.addcmul(-g_all[rows, None], space_float, space_scale[rows, None]))
            grad.scatter_add_(1, targets[rows, None], g_picked[rows, None])
            if ctx.eos_token_id is not None:
                grad[:, ctx.eos_token_id] += g_eos[rows]
            if tanh is not None:
                grad.mul_(tanh.square_().neg_().add_(1))  # d softcap / d logits
            grad = grad.to(weight.dtype)  # (n, V)
            if grad_hidden is not None:
                grad_hidden[rows] = grad @ weight  # (n, d)
            if need_weight:
                grad_weight.addmm_(grad.t().to(dtype), hidden[rows].to(dtype))  # (V, d)
            if need_bias:
                grad_bias += grad.sum(0)
        return (
            grad_hidden,
            grad_weight.to(weight.dtype) if need_weight else None,
            grad_bias.to(weight.dtype) if need_bias else None,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def chunked_head_logprobs(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    targets: Tensor,
    *,
    space_token_mask: Tensor | None,
    eos_token_id: int | None,
    logit_softcap: float | None,
    chunk_size: int | None,
    max_kept_logits: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Log-probs of ``targets``, of the space-like set and of EOS, one chunk of rows at a time.

    ``max_kept_logits``: the most (N x V) logits kept from forward for backward instead of
    recomputed (None: DEFAULT_MAX_KEPT_LOGITS; 0: always recompute).

    Shapes: hidden (N, d), weight (V, d), bias (V,), targets (N,) -> 3 x (N,).
    """
    size = chunk_size if chunk_size is not None else default_chunk_size(weight.shape[0])
    keep = DEFAULT_MAX_KEPT_LOGITS if max_kept_logits is None else max_kept_logits
    differentiable = (t is not None and t.requires_grad for t in (hidden, weight, bias))
    if not (torch.is_grad_enabled() and any(differentiable)):
        keep = 0  # no backward will read them (a frozen teacher's head)
    out: tuple[Tensor, Tensor, Tensor] = _ChunkedHeadLogprobs.apply(  # type: ignore[no-untyped-call]
        hidden, weight, bias, targets, space_token_mask, eos_token_id, logit_softcap, size, keep
    )
    return out
