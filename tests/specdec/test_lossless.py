"""Speculative decoding is lossless: exact enumeration of the real decoder's output distribution.

The reference is brute force over the target alone (every token sequence, its probability by
the chain rule); the decoder under test is replayed once per path of its random decisions.
"""

from __future__ import annotations

import pytest
import torch
from specdec_support import TableLM, enumerate_outcomes, target_sequence_distribution

from ctd.specdec import TokenIntersection, speculative_generate
from ctd.specdec.evaluate import SpecDecSettings, analytic_acceptance

TARGET_BYTES = [b"a", b"b", b"ab", b"<eos>"]
TARGET_SPECIAL = [False, False, False, True]
DRAFTER_BYTES = [b"b", b"a", b"ba", b"</s>", b"x"]
DRAFTER_SPECIAL = [False, False, False, True, False]


def _vocabulary() -> TokenIntersection:
    return TokenIntersection(
        DRAFTER_BYTES, TARGET_BYTES, drafter_special=DRAFTER_SPECIAL,
        target_special=TARGET_SPECIAL, special_pairs=[(3, 3)],
    )  # fmt: skip


def _assert_same_distribution(ours: dict, reference: dict) -> None:  # type: ignore[type-arg]
    assert sum(ours.values()) == pytest.approx(1.0, abs=1e-12)
    for sequence in set(ours) | set(reference):
        assert ours.get(sequence, 0.0) == pytest.approx(reference.get(sequence, 0.0), abs=1e-12), (
            sequence
        )


@pytest.mark.parametrize(("gamma", "temperature"), [(1, 1.0), (2, 1.0), (3, 0.7)])
def test_same_tokenizer_sampling_is_lossless(gamma: int, temperature: float) -> None:
    target, drafter = TableLM(4, seed=0), TableLM(4, seed=1)

    def run(random):  # type: ignore[no-untyped-def]
        out = speculative_generate(
            target, drafter, [1, 2], gamma=gamma, max_new_tokens=3,
            temperature=temperature, eos_token_id=3, random=random,
        )  # fmt: skip
        return tuple(out.token_ids)

    ours = enumerate_outcomes(run)
    _assert_same_distribution(ours, target_sequence_distribution(target, [1, 2], 3, 3, temperature))


@pytest.mark.parametrize("gamma", [1, 3])
def test_cross_tokenizer_sampling_is_lossless(gamma: int) -> None:
    """TLI: drafter tokens "b"/"a" are shared, "ba" and "x" are not; target "ab" is spelt a+b."""
    vocabulary = _vocabulary()
    target, drafter = TableLM(4, seed=2), TableLM(5, seed=3)

    def run(random):  # type: ignore[no-untyped-def]
        out = speculative_generate(
            target, drafter, [0, 1], gamma=gamma, max_new_tokens=3, temperature=1.0,
            eos_token_id=3, vocabulary=vocabulary, drafter_prompt_ids=[1, 0], random=random,
        )  # fmt: skip
        return tuple(out.token_ids)

    ours = enumerate_outcomes(run)
    _assert_same_distribution(ours, target_sequence_distribution(target, [0, 1], 3, 3, 1.0))


def test_cross_tokenizer_greedy_equals_target_greedy() -> None:
    vocabulary = _vocabulary()
    for seed in range(5):
        target, drafter = TableLM(4, seed=10 + seed), TableLM(5, seed=20 + seed)
        context = [0, 1]
        for _ in range(12):  # the target's own greedy decoding, by hand
            context.append(int(target.next_logits(context).argmax()))
        expected = context[2:]
        if 3 in expected:
            expected = expected[: expected.index(3) + 1]
        out = speculative_generate(
            target, drafter, [0, 1], gamma=3, max_new_tokens=12, eos_token_id=3,
            vocabulary=vocabulary, drafter_prompt_ids=[1, 0],
        )  # fmt: skip
        assert out.token_ids == expected


def test_tli_mapping_by_hand() -> None:
    vocabulary = _vocabulary()
    assert vocabulary.drafter_to_target.tolist() == [1, 0, -1, 3, -1]
    assert vocabulary.to_drafter_ids([2, 0, 3]) == [1, 0, 1, 3]  # "ab" -> a, b (no "ab" drafter)
    assert vocabulary.spell(b"bab") == [2, 0]  # longest match: "ba" then "b"
    q = vocabulary.draft_probs(torch.log(torch.tensor([0.1, 0.2, 0.3, 0.1, 0.3])), 1.0, 1.0)
    torch.testing.assert_close(q, torch.tensor([0.25, 0.5, 0.0, 0.25, 0.0]))
    torch.testing.assert_close(vocabulary.to_target_probs(q), torch.tensor([0.5, 0.25, 0.0, 0.25]))
    with pytest.raises(ValueError, match="share no token"):
        TokenIntersection([b"x"], [b"y"])


def _tli_by_hand(drafter_logits: torch.Tensor) -> torch.Tensor:
    """Drafter ids b, a, </s> (0, 1, 3) are shared as target a, b, <eos> (1, 0, 3)."""
    shared = torch.softmax(drafter_logits[[0, 1, 3]], -1)
    return torch.stack([shared[1], shared[0], torch.zeros((), dtype=shared.dtype), shared[2]])


def test_cross_tokenizer_analytic_acceptance() -> None:
    """Position 1: P(first draft accepted), enumerated; position 2: by hand after "ab" -> a, b."""
    vocabulary = _vocabulary()
    target, drafter = TableLM(4, seed=2), TableLM(5, seed=3)

    def run(random):  # type: ignore[no-untyped-def]
        out = speculative_generate(
            target, drafter, [0, 1], gamma=1, max_new_tokens=2, temperature=1.0,
            eos_token_id=3, vocabulary=vocabulary, drafter_prompt_ids=[1, 0], random=random,
        )  # fmt: skip
        return out.accepted_per_block[0]

    first = enumerate_outcomes(run).get(1, 0.0)
    p2 = torch.softmax(target.next_logits([0, 1, 2]), -1)
    q2 = _tli_by_hand(drafter.next_logits([1, 0, 1, 0]))
    second = float(torch.minimum(p2, q2).sum())
    settings = SpecDecSettings(gamma=1, temperature=1.0)
    alpha = analytic_acceptance(
        target, drafter, [[0, 1]], [[2, 1]], settings,
        vocabulary=vocabulary, drafter_prompts=[[1, 0]],
    )  # fmt: skip
    assert alpha == pytest.approx((first + second) / 2, abs=1e-6)
    q1 = _tli_by_hand(drafter.next_logits([1, 0]))
    p1 = torch.softmax(target.next_logits([0, 1]), -1)
    assert first == pytest.approx(float(torch.minimum(p1, q1).sum()), abs=1e-12)
