"""Acceptance = 1 - TVD, the tau formula for constant acceptance, MBSU: independent references."""

from __future__ import annotations

import math

import pytest
import torch
from specdec_support import enumerate_outcomes

from ctd.metrics.acceptance import (
    expected_block_efficiency,
    measured_acceptance,
    memory_bound_speedup,
    teacher_forced_acceptance,
)
from ctd.specdec import TorchRandom, speculative_generate, speculative_verify


def _random_pair(vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, vocab, generator=generator, dtype=torch.float64) * 2
    return torch.softmax(logits[0], -1), torch.softmax(logits[1], -1)


@pytest.mark.parametrize("seed", range(4))
def test_acceptance_probability_is_one_minus_tvd_and_output_is_p(seed: int) -> None:
    """Enumerate draft x ~ q and the verify decisions of one block with gamma = 1."""
    p, q = _random_pair(5, seed)
    target = torch.stack([p, p])  # the bonus row is p too, so the output must be p exactly

    def run(random):  # type: ignore[no-untyped-def]
        draft = random.categorical(q)
        accepted, token = speculative_verify(target, q[None], [draft], random)
        return (accepted, draft if accepted else token)

    outcomes = enumerate_outcomes(run)
    accept = sum(prob for (accepted, _), prob in outcomes.items() if accepted)
    tvd = 0.5 * float((p - q).abs().sum())  # the textbook definition
    assert accept == pytest.approx(1 - tvd, abs=1e-12)
    accepted_mass = [sum(pr for (a, t), pr in outcomes.items() if a and t == v) for v in range(5)]
    first_token = [sum(pr for (_, t), pr in outcomes.items() if t == v) for v in range(5)]
    torch.testing.assert_close(
        torch.tensor(accepted_mass, dtype=torch.float64), torch.minimum(p, q)
    )
    torch.testing.assert_close(torch.tensor(first_token, dtype=torch.float64), p)


def test_simulated_acceptance_matches_one_minus_tvd_within_binomial_noise() -> None:
    p, q = _random_pair(8, 11)
    random = TorchRandom(0)
    trials, target = 3000, torch.stack([p, p])
    hits = sum(
        speculative_verify(target, q[None], [random.categorical(q)], random)[0]
        for _ in range(trials)
    )
    alpha = 1 - 0.5 * float((p - q).abs().sum())
    assert abs(hits / trials - alpha) < 4 * math.sqrt(alpha * (1 - alpha) / trials)


class _ConstantLM:
    """Context-free logits: every position has the same p (or q), so acceptance is constant."""

    def __init__(self, probs: torch.Tensor) -> None:
        self.logits = probs.log()
        self.length = 0
        self.forward_calls = 0
        self.device = torch.device("cpu")

    def reset(self) -> None:
        self.length = 0

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        self.length = 0
        return self.step(ids)

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        self.length += ids.shape[1]
        self.forward_calls += 1
        return self.logits.expand(1, ids.shape[1], -1)

    def rollback(self, num_tokens: int) -> None:
        self.length -= num_tokens


@pytest.mark.parametrize("gamma", [1, 2, 3])
def test_first_block_tau_matches_constant_acceptance_formula(gamma: int) -> None:
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    alpha = float(torch.minimum(p, q).sum())  # 0.7

    def run(random):  # type: ignore[no-untyped-def]
        out = speculative_generate(
            _ConstantLM(p), _ConstantLM(q), [0], gamma=gamma, max_new_tokens=gamma + 1,
            temperature=1.0, random=random,
        )  # fmt: skip
        return out.accepted_per_block[0] + 1

    outcomes = enumerate_outcomes(run)
    tau = sum(tokens * prob for tokens, prob in outcomes.items())
    by_hand = sum(alpha**k for k in range(gamma + 1))  # sum_k P(first k drafts accepted)
    assert tau == pytest.approx(by_hand, abs=1e-12)
    assert expected_block_efficiency(alpha, gamma) == pytest.approx(by_hand, abs=1e-12)
    assert 1.0 <= tau <= gamma + 1


def test_formula_limits_and_mbsu() -> None:
    assert expected_block_efficiency(1.0, 4) == 5.0
    assert expected_block_efficiency(0.0, 4) == 1.0
    assert expected_block_efficiency(0.5, 2) == pytest.approx(1.75)
    assert memory_bound_speedup(2.5, 3, 0.0) == 2.5
    assert memory_bound_speedup(2.5, 3, 0.5) == pytest.approx(1.0)
    assert measured_acceptance([2, 3, 0], [3, 3, 3]) == pytest.approx(5 / 7)


def test_teacher_forced_acceptance_is_one_minus_tvd_per_position() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(2, 3, 6, generator=generator, dtype=torch.float64)
    drafter = torch.randn(2, 3, 6, generator=generator, dtype=torch.float64)
    alpha = teacher_forced_acceptance(target, drafter)
    tvd = 0.5 * (target.softmax(-1) - drafter.softmax(-1)).abs().sum(-1)
    torch.testing.assert_close(alpha, 1 - tvd)
    greedy = teacher_forced_acceptance(target, drafter, temperature=0.0)
    torch.testing.assert_close(greedy, (target.argmax(-1) == drafter.argmax(-1)).double())
    masked = teacher_forced_acceptance(target, target, torch.tensor([[1, 1, 0], [1, 0, 0]]))
    assert torch.isnan(masked).sum() == 3
    assert float(masked.nanmean()) == pytest.approx(1.0)
