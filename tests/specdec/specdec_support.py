"""Exact enumeration for speculative decoding: table LMs and a random source that branches.

`TableLM` has `CachedModel`'s interface (prefill/step/rollback/length/reset/forward_calls) over a
deterministic context-dependent logit table, so thousands of replays stay fast.
`enumerate_outcomes` replays a decoder once per path through its random decisions (every
Bernoulli outcome, every categorical value with nonzero mass) and returns the exact
distribution of its outputs: the real decoder, not a model of it, is enumerated.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence

import torch


class TableLM:
    """logits(context) = A[last] + B[second last] + C[position]: depends on order and length."""

    def __init__(self, vocab_size: int, seed: int, *, scale: float = 1.5) -> None:
        generator = torch.Generator().manual_seed(seed)
        tables = torch.randn(3, 64, vocab_size, generator=generator, dtype=torch.float64) * scale
        self.last, self.before, self.position = tables
        self.vocab_size = vocab_size
        self.tokens: list[int] = []
        self.forward_calls = 0
        self.device = torch.device("cpu")

    @property
    def length(self) -> int:
        return len(self.tokens)

    def reset(self) -> None:
        self.tokens = []

    def next_logits(self, context: Sequence[int]) -> torch.Tensor:
        before = self.before[context[-2]] if len(context) > 1 else 0.0
        return self.last[context[-1]] + before + self.position[len(context)]

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        self.tokens = []
        return self.step(ids)

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        rows = []
        for token in ids[0].tolist():
            self.tokens.append(token)
            rows.append(self.next_logits(self.tokens))
        self.forward_calls += 1
        return torch.stack(rows)[None]

    def rollback(self, num_tokens: int) -> None:
        assert 0 <= num_tokens <= len(self.tokens)
        self.tokens = self.tokens[: len(self.tokens) - num_tokens]


class BranchingRandom:
    """Follows a script of branch indices, then takes branch 0; records every decision."""

    def __init__(self, script: Sequence[int]) -> None:
        self.script = list(script)
        self.taken: list[int] = []
        self.widths: list[int] = []
        self.probability = 1.0

    def _choose(self, weights: list[float]) -> int:
        options = [i for i, w in enumerate(weights) if w > 0]
        position = len(self.taken)
        branch = self.script[position] if position < len(self.script) else 0
        self.taken.append(branch)
        self.widths.append(len(options))
        self.probability *= weights[options[branch]]
        return options[branch]

    def bernoulli(self, probability: float) -> bool:
        return self._choose([probability, 1.0 - probability]) == 0

    def categorical(self, probs: torch.Tensor) -> int:
        return self._choose(probs.double().tolist())


def enumerate_outcomes(run: Callable[[BranchingRandom], Hashable]) -> dict[Hashable, float]:
    """Exact output distribution of `run` over all paths of its random decisions."""
    distribution: dict[Hashable, float] = {}
    stack: list[list[int]] = [[]]
    while stack:
        script = stack.pop()
        random = BranchingRandom(script)
        outcome = run(random)
        distribution[outcome] = distribution.get(outcome, 0.0) + random.probability
        for position in range(len(script), len(random.taken)):
            for branch in range(1, random.widths[position]):
                stack.append([*random.taken[:position], branch])
    return distribution


def target_sequence_distribution(
    model: TableLM, prompt: Sequence[int], length: int, eos: int | None, temperature: float
) -> dict[Hashable, float]:
    """Brute force: P(first `length` tokens) of sampling the target itself, EOS-terminated."""
    distribution: dict[Hashable, float] = {}
    for tokens in itertools.product(range(model.vocab_size), repeat=length):
        if eos is not None and eos in tokens:
            tokens = tokens[: tokens.index(eos) + 1]
        if tokens in distribution:
            continue
        probability, context = 1.0, list(prompt)
        for token in tokens:
            logits = model.next_logits(context) / temperature
            probability *= float(torch.softmax(logits, -1)[token])
            context.append(token)
        distribution[tokens] = probability
    return distribution
