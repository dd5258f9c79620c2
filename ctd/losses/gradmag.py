"""GradMag: combine several losses so that each contributes equally to the last layer's gradient."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor


def approx_gradmag_preserve_mag(
    losses: Sequence[Tensor],
    parameters: Iterable[Tensor],
    *,
    eps: float = 1e-8,
    reduce_gradient: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Weighted sum ``sum_i w_i L_i / sum_i w_i`` with ``w_i = 1 / ||grad_last L_i||`` (detached).

    ``parameters`` are the last layer's parameters; each loss's gradient norm on them is measured
    with ``torch.autograd.grad`` (graphs retained). A loss with zero (or no) gradient there gets
    weight 0 rather than tokenkit's ``1 / eps``, which would swamp every other loss; if no loss has
    a gradient the plain sum is returned. ``reduce_gradient`` maps each measured gradient first
    (under data parallelism: its mean over ranks, so that every rank uses the same weights).

    Shapes: losses: k x () -> ().
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083 (GradMag, tokenkit
    ``approx_gradmag_preserve_mag``).
    """
    if not losses:
        raise ValueError("losses must contain at least one loss")
    for i, loss in enumerate(losses):
        if loss.dim() != 0:
            raise ValueError(f"losses[{i}] must be a scalar, got shape {tuple(loss.shape)}")
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ValueError("parameters has no tensor that requires grad")
    norms = []
    for loss in losses:
        if not loss.requires_grad:
            norms.append(torch.zeros((), device=loss.device))
            continue
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        if reduce_gradient is not None:
            grads = tuple(None if g is None else reduce_gradient(g) for g in grads)
        squares = [g.detach().float().pow(2).sum() for g in grads if g is not None]
        norms.append(
            torch.stack(squares).sum().sqrt() if squares else torch.zeros((), device=loss.device)
        )
    norm = torch.stack(norms)  # (k,)
    weights = torch.where(norm > 0, 1.0 / (norm + eps), torch.zeros_like(norm))  # (k,)
    stacked = torch.stack([loss.float() for loss in losses])  # (k,)
    if not bool((weights > 0).any()):
        return stacked.sum()
    return (weights * stacked).sum() / weights.sum()
