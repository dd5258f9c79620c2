"""SFT: next-token cross-entropy on the main-path log-probs (a baseline and a companion loss)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ctd.losses._checks import check_ndim, check_no_nan
from ctd.losses._reduce import (
    Normalizer,
    compute_dtype,
    masked_mean,
    resolve_normalizer,
    scored_token_mask,
)


def sft_loss(
    logprobs: Tensor, mask: Tensor | None = None, *, normalizer: Normalizer | None = None
) -> Tensor:
    """Mean negative log-likelihood of the scored tokens (``mask``, never position 0).

    The sum is divided by the number of scored tokens, or by ``normalizer`` (a number, or a
    function of that number, e.g. a count summed over data-parallel ranks).

    Takes :func:`~ctd.losses.token_logprobs` output, so the memory-bounded path serves SFT too.

    Shapes: logprobs (B, T), mask (B, T) -> ().
    Reference: standard maximum likelihood; tokenkit ``sft`` (Minixhofer et al. 2025, arXiv
    2503.20083).
    """
    check_ndim("logprobs", logprobs, 2)
    check_no_nan("logprobs", logprobs)
    values = -logprobs.to(compute_dtype(logprobs))  # half precision is summed in float32
    scored = scored_token_mask(logprobs, mask)
    if normalizer is None:
        return masked_mean(values, scored)
    total = torch.where(scored, values, torch.zeros_like(values)).sum()
    return total / resolve_normalizer(normalizer, scored.sum().to(values.dtype))


class SFTLoss(nn.Module):
    """Module form of :func:`sft_loss`.

    Shapes: see :func:`sft_loss`.
    """

    def forward(
        self, logprobs: Tensor, mask: Tensor | None = None, *, normalizer: Normalizer | None = None
    ) -> Tensor:
        """Compute :func:`sft_loss`."""
        return sft_loss(logprobs, mask, normalizer=normalizer)
