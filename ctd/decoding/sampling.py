"""Turning next-token logits into a distribution and a token: temperature, top-p, greedy.

Speculative sampling needs the *same* warped distribution on both sides (Leviathan et al. 2023,
arXiv 2211.17192: p and q after identical temperature and top-p), so `warp_probs` is the one
function every decoder here uses to get probabilities.
"""

from __future__ import annotations

import torch

__all__ = ["check_sampling_args", "sample", "warp_probs"]


def check_sampling_args(temperature: float, top_p: float) -> None:
    """Raise ValueError for a negative temperature or a top-p outside (0, 1]."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def warp_probs(
    logits: torch.Tensor, *, temperature: float = 1.0, top_p: float = 1.0
) -> torch.Tensor:
    """The sampling distribution over the last axis, in float32 (float64 stays float64).

    temperature 0 is greedy: a one-hot at the argmax (the lowest id among ties). top-p keeps the
    smallest set of most likely tokens whose mass reaches `top_p` (nucleus sampling, Holtzman
    et al. 2020, arXiv 1904.09751) and renormalises.

    Shapes: logits (..., V); returns (..., V), rows summing to 1.
    """
    check_sampling_args(temperature, top_p)
    if logits.dtype != torch.float64:
        logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(-1, keepdim=True)


def sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of a distribution.

    Shapes: probs (..., V); returns (...) long.
    """
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
