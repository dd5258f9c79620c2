"""Mixture weights of an ensemble: checked once, normalised to sum to 1."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["COMBINES", "check_combine", "normalized_weights"]

COMBINES = ("mean_prob", "mean_logprob")
"""How member distributions are pooled: the weighted mean of probabilities (linear pool, the
default, tokenkit's `mean_prob`) or of log-probabilities, renormalised (geometric pool)."""


def check_combine(combine: str) -> None:
    """Raise ValueError unless `combine` is one of `COMBINES`."""
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {', '.join(COMBINES)}, got {combine!r}")


def normalized_weights(weights: Sequence[float] | None, num_members: int) -> torch.Tensor:
    """The mixture weights as a float64 tensor that sums to 1 (uniform when `weights` is None).

    Shapes: returns (M,) for M = `num_members`.

    Raises:
        ValueError: no members; a weight count other than M; a negative or non-finite weight;
            weights that do not sum to a positive number.

    Example:
        >>> normalized_weights([1, 3], 2).tolist()
        [0.25, 0.75]
    """
    if num_members < 1:
        raise ValueError("an ensemble needs at least one member, got an empty member list")
    if weights is None:
        return torch.full((num_members,), 1.0 / num_members, dtype=torch.float64)
    values = [float(weight) for weight in weights]
    if len(values) != num_members:
        raise ValueError(f"got {len(values)} weights for {num_members} members")
    bad = [value for value in values if not math.isfinite(value) or value < 0]
    if bad:
        raise ValueError(f"weights must be finite and non-negative, got {values}")
    total = sum(values)
    if total <= 0:
        raise ValueError(f"weights must sum to a positive number, got {values} (sum {total})")
    return torch.tensor(values, dtype=torch.float64) / total
