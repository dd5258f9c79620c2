"""Verifying a block of drafted tokens: speculative sampling and greedy matching.

Speculative sampling (Leviathan et al. 2023, arXiv 2211.17192, Alg. 1; Chen et al. 2023,
arXiv 2302.01318): draft token x_i ~ q_i is accepted with probability min(1, p_i(x_i) / q_i(x_i));
at the first rejection the emitted token is drawn from the residual norm(max(0, p_i - q_i)); when
all drafts pass, a bonus token is drawn from p_{gamma+1}. The emitted tokens are distributed
exactly as the target's p, whatever q is. Greedy verification accepts while the draft equals the
target's argmax and emits the target's argmax at the first mismatch.

Randomness goes through a `RandomSource` (one Bernoulli per tested draft, one categorical per
emitted token) so tests can enumerate every branch and its probability exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

__all__ = ["RandomSource", "TorchRandom", "greedy_verify", "speculative_verify"]


class RandomSource(Protocol):
    """The random decisions of speculative decoding."""

    def bernoulli(self, probability: float) -> bool:
        """True with the given probability."""

    def categorical(self, probs: torch.Tensor) -> int:
        """An index drawn from a distribution of shape (V,)."""


class TorchRandom:
    """A `RandomSource` on a seeded `torch.Generator` (on the CPU, so runs repeat anywhere)."""

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def bernoulli(self, probability: float) -> bool:
        """True with the given probability."""
        if probability >= 1.0:
            return True
        return bool(torch.rand((), generator=self.generator).item() < probability)

    def categorical(self, probs: torch.Tensor) -> int:
        """An index drawn from `probs` (V,)."""
        return int(torch.multinomial(probs.detach().float().cpu(), 1, generator=self.generator))


def speculative_verify(
    target_probs: torch.Tensor,
    draft_probs: torch.Tensor,
    draft_tokens: Sequence[int],
    random: RandomSource,
) -> tuple[int, int]:
    """Accept a prefix of the drafts and pick the next token (lossless speculative sampling).

    Args:
        target_probs: the target's warped distributions after each draft prefix: row i is p
            for position i (row gamma is the bonus position).
        draft_probs: the distributions the drafts were drawn from, in the target's vocabulary.
        draft_tokens: the gamma drafted target ids.
        random: the random source.

    Shapes: target_probs (gamma + 1, V), draft_probs (gamma, V).

    Returns:
        (number of accepted drafts, the token emitted after them).
    """
    gamma = len(draft_tokens)
    for index, token in enumerate(draft_tokens):
        target_p = float(target_probs[index, token])
        draft_q = float(draft_probs[index, token])
        if target_p >= draft_q or random.bernoulli(target_p / draft_q):
            continue
        residual = (target_probs[index] - draft_probs[index]).clamp(min=0.0)
        total = float(residual.sum())
        # a rejection implies p(x) < q(x), so the residual has mass TVD(p, q) > 0; only rounding
        # can leave it empty, and then p itself is the exact conditional
        return index, random.categorical(residual / total if total > 0 else target_probs[index])
    return gamma, random.categorical(target_probs[gamma])


def greedy_verify(target_logits: torch.Tensor, draft_tokens: Sequence[int]) -> tuple[int, int]:
    """Accept drafts while they equal the target's argmax; emit the argmax after them.

    Shapes: target_logits (gamma + 1, V).

    Returns:
        (number of accepted drafts, the target's argmax at the first mismatch or the bonus).
    """
    best = target_logits.argmax(-1).tolist()
    accepted = 0
    while accepted < len(draft_tokens) and best[accepted] == draft_tokens[accepted]:
        accepted += 1
    return accepted, int(best[accepted])
