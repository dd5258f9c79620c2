"""TVD++: total-variation distillation for drafters, as an exact policy gradient over the vocab.

Goel et al. 2024, "Direct Alignment of Draft Model for Speculative Decoding with Chat-Fine-Tuned
LLMs", arXiv 2403.00858. With reward ``r(v) = 1{p(v) > q(v)}`` (target ``p``, draft ``q``),
``grad TVD(p, q) = -E_{v~q}[r(v) grad log q(v)]``; TVD++ replaces ``r`` by a normalised
advantage ``(r - mu) / sigma``. The paper's equation could not be consulted, so the axis of
``mu, sigma`` is a parameter (``normalization``):

* ``"position"`` (default): q-weighted over each position's vocabulary, ``mu = E_q r``,
  ``sigma = sqrt(mu (1 - mu))``: each position's gradient is its TVD gradient / sigma_t.
* ``"batch"``: pooled over all scored (position, token) pairs, q-weighted: TVD gradient / sigma.
* ``"none"``: ``A = r``: exactly the TVD gradient.
* ``"vocab_unweighted"``: uniform mean/std over the vocabulary, loss averaged over the vocab;
  the only public third-party implementation; not proportional to the TVD gradient.

The returned value is the masked mean TVD (for logging); the gradient is the surrogate's.
The expectation over the vocabulary is exact (no sampling). The target gets no gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ctd.losses._checks import check_ndim, check_no_nan, check_same_shape, check_shape
from ctd.losses._reduce import compute_dtype, masked_mean

TVDPP_NORMALIZATIONS = ("position", "batch", "none", "vocab_unweighted")


def tvdpp_coefficients(
    draft_probs: Tensor, target_probs: Tensor, normalization: str, eps: float
) -> Tensor:
    """Per-token weights ``c`` of the surrogate ``-sum_v c_v log q_v`` (``"batch"``: unscaled).

    Shapes: draft_probs (N, V), target_probs (N, V) -> (N, V).
    Reference: Goel et al. 2024, arXiv 2403.00858 (TVD++).
    """
    reward = target_probs > draft_probs  # (N, V) bool, ties -> False
    if normalization in ("none", "batch"):  # a batch-constant baseline cancels exactly
        return torch.where(reward, draft_probs, torch.zeros_like(draft_probs))
    if normalization == "position":  # q (r - mu) / sigma, in place on one buffer
        coef = torch.where(reward, draft_probs, torch.zeros_like(draft_probs))  # (N, V)
        mean = coef.sum(-1, keepdim=True)  # (N, 1)
        std = (mean * (1 - mean)).clamp_min(0).sqrt()
        return coef.addcmul_(draft_probs, mean, value=-1.0).div_(std + eps)
    if normalization == "vocab_unweighted":
        values = reward.to(draft_probs.dtype)  # (N, V)
        mean, std = values.mean(-1, keepdim=True), values.std(-1, keepdim=True)
        return values.sub_(mean).div_((std + eps) * values.shape[-1])
    raise ValueError(f"unknown normalization {normalization!r}; choose from {TVDPP_NORMALIZATIONS}")


def batch_reward_std(draft_probs: Tensor, target_probs: Tensor, weights: Tensor) -> Tensor:
    """Pooled q-weighted standard deviation of the reward, positions weighted by ``weights``.

    Shapes: draft_probs (N, V), target_probs (N, V), weights (N,) summing to 1 -> ().
    """
    mean = ((draft_probs * (target_probs > draft_probs)).sum(-1) * weights).sum()
    return (mean * (1 - mean)).clamp_min(0).sqrt()


def tvdpp_loss(
    draft_logits: Tensor,
    target_logits: Tensor,
    mask: Tensor | None = None,
    *,
    normalization: str = "position",
    temperature: float = 1.0,
    eps: float = 1e-6,
) -> Tensor:
    """TVD++ drafter loss: value = masked mean TVD, gradient = normalised exact policy gradient.

    ``mask`` marks the positions to score (default all); the target is detached.

    The draft is the student and comes first, as in every loss of :mod:`ctd.losses`.

    Shapes: draft_logits (B, T, V), target_logits (B, T, V), mask (B, T) -> ().
    Reference: Goel et al. 2024, arXiv 2403.00858 (TVD++); module docstring for the readings.

    Example:
        Target (0.5, 0.5), draft (0.25, 0.75): TVD ``0.5 (0.25 + 0.25) = 0.25``. With
        ``normalization="none"`` the gradient is the TVD's, pushing up the token the draft
        underrates (``d TVD / d z = (-0.1875, 0.1875)``):

        >>> import math, torch
        >>> draft = torch.tensor([[[math.log(0.25), math.log(0.75)]]], requires_grad=True)
        >>> loss = tvdpp_loss(draft, torch.zeros(1, 1, 2), normalization="none")
        >>> round(loss.item(), 4)
        0.25
        >>> loss.backward()
        >>> [round(g, 4) for g in draft.grad.flatten().tolist()]
        [-0.1875, 0.1875]
    """
    check_ndim("draft_logits", draft_logits, 3)
    check_same_shape("target_logits", target_logits, "draft_logits", draft_logits)
    check_no_nan("draft_logits", draft_logits)
    check_no_nan("target_logits", target_logits)
    if normalization not in TVDPP_NORMALIZATIONS:
        raise ValueError(
            f"unknown normalization {normalization!r}; choose from {TVDPP_NORMALIZATIONS}"
        )
    if mask is None:
        mask = torch.ones(draft_logits.shape[:2], dtype=torch.bool, device=draft_logits.device)
    check_shape("mask", mask, draft_logits.shape[:2])
    mask = mask.to(torch.bool)
    dtype = compute_dtype(draft_logits)
    draft_logp = torch.log_softmax(draft_logits.to(dtype) / temperature, dim=-1)  # (B, T, V)
    target = torch.softmax(target_logits.detach().to(dtype) / temperature, dim=-1)  # (B, T, V)
    draft = torch.softmax(draft_logits.detach().to(dtype) / temperature, dim=-1)  # (B, T, V)
    coef = tvdpp_coefficients(draft, target, normalization, eps)  # (B, T, V)
    if normalization == "batch":
        weights = mask.to(dtype) / mask.sum().clamp_min(1)  # (B, T)
        coef = coef / (batch_reward_std(draft, target, weights) + eps)
    surrogate = -(coef * draft_logp).sum(-1)  # (B, T)
    tvd = 0.5 * (target - draft).abs().sum(-1)  # (B, T)
    return masked_mean(tvd + surrogate - surrogate.detach(), mask)


class TVDPPLoss(nn.Module):
    """Module form of :func:`tvdpp_loss`.

    Shapes: see :func:`tvdpp_loss`.
    Reference: Goel et al. 2024, arXiv 2403.00858.
    """

    def __init__(
        self, *, normalization: str = "position", temperature: float = 1.0, eps: float = 1e-6
    ) -> None:
        super().__init__()
        if normalization not in TVDPP_NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}")
        self.normalization, self.temperature, self.eps = normalization, temperature, eps

    def forward(
        self, draft_logits: Tensor, target_logits: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        """Compute :func:`tvdpp_loss` with the stored hyperparameters."""
        return tvdpp_loss(
            draft_logits,
            target_logits,
            mask,
            normalization=self.normalization,
            temperature=self.temperature,
            eps=self.eps,
        )
