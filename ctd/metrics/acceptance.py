"""What a drafter is worth in speculative decoding: alpha, tau, MBSU, and their predictions.

* alpha, the acceptance rate. Per context it is beta = sum_v min(p(v), q(v)) = 1 - TVD(p, q)
  (Leviathan et al. 2023, arXiv 2211.17192, Thm 3.5); greedy: 1{argmax p = argmax q}. From a
  run it is estimated as accepted / (accepted + rejections), the maximum-likelihood estimate of
  a constant alpha from truncated geometric blocks.
* tau, the block efficiency: new tokens per target call. For a constant alpha,
  tau = (1 - alpha^(gamma + 1)) / (1 - alpha), which lies in [1, gamma + 1].
* MBSU, the memory-bound speed-up tau / (gamma * c + 1), with c the drafter/target cost ratio
  (Goel et al. 2024, arXiv 2403.00858; MBSU <= tau, equal at c = 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ctd.decoding.sampling import warp_probs

__all__ = [
    "block_efficiency",
    "expected_block_efficiency",
    "measured_acceptance",
    "memory_bound_speedup",
    "teacher_forced_acceptance",
]


def expected_block_efficiency(alpha: float, gamma: int) -> float:
    """Block efficiency for a constant acceptance rate: (1 - a^(gamma + 1)) / (1 - a).

    At alpha = 1 it is gamma + 1.

    Raises:
        ValueError: alpha outside [0, 1] or gamma < 1.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if gamma < 1:
        raise ValueError(f"gamma must be at least 1, got {gamma}")
    if alpha == 1.0:
        return float(gamma + 1)
    return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)


def memory_bound_speedup(tau: float, gamma: int, cost_ratio: float) -> float:
    """MBSU = tau / (gamma * c + 1), c = drafter cost / target cost per call."""
    if cost_ratio < 0:
        raise ValueError(f"cost_ratio must be >= 0, got {cost_ratio}")
    return tau / (gamma * cost_ratio + 1.0)


def measured_acceptance(
    accepted_per_block: Sequence[int], drafted_per_block: Sequence[int]
) -> float:
    """The acceptance rate of a run: accepted / (accepted + rejections).

    A block rejects when it accepts fewer drafts than it proposed. 1.0 when nothing was
    rejected (or nothing drafted).
    """
    accepted = sum(accepted_per_block)
    rejections = sum(a < d for a, d in zip(accepted_per_block, drafted_per_block, strict=True))
    return accepted / (accepted + rejections) if accepted + rejections else 1.0


def block_efficiency(new_tokens: int, target_calls: int) -> float:
    """Block efficiency of a run: new tokens per target verification call."""
    if target_calls < 1:
        raise ValueError(f"target_calls must be at least 1, got {target_calls}")
    return new_tokens / target_calls


def teacher_forced_acceptance(
    target_logits: torch.Tensor,
    drafter_logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> torch.Tensor:
    """Per-position acceptance sum_v min(p, q) after identical warping (one teacher-forced pass).

    At temperature 0 it is 1{argmax p = argmax q}. Masked positions are NaN, so a caller's
    `nanmean` averages the scored ones.

    Shapes: target_logits (B, T, V), drafter_logits (B, T, V), mask (B, T) bool -> (B, T).
    """
    if target_logits.shape != drafter_logits.shape:
        raise ValueError(
            f"target logits {tuple(target_logits.shape)} and drafter logits "
            f"{tuple(drafter_logits.shape)} differ: speculative decoding needs one vocabulary"
        )
    p = warp_probs(target_logits, temperature=temperature, top_p=top_p)
    q = warp_probs(drafter_logits, temperature=temperature, top_p=top_p)
    alpha = torch.minimum(p, q).sum(-1)
    if mask is not None:
        alpha = alpha.masked_fill(~mask.bool(), float("nan"))
    return alpha
