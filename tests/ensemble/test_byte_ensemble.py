"""ByteEnsemble: identical members, distributions that sum to 1, Jensen, the same bytes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ensemble_support import tiny_bpe, tiny_llama

from ctd.ensemble import ByteEnsemble, ByteLM, bits_per_byte_report, score_bytes


@pytest.fixture(scope="module")
def members():  # type: ignore[no-untyped-def]
    first, second = tiny_bpe(280), tiny_bpe(300, ["hat cat bat", "that rat sat"])
    return [
        ByteLM(tiny_llama(len(first), seed=1), first, beam_width=4, name="first"),
        ByteLM(tiny_llama(len(second), seed=2), second, beam_width=4, name="second"),
    ]


def test_identical_members_give_that_members_scores_and_generation(members) -> None:  # type: ignore[no-untyped-def]
    one = members[0]
    ensemble = ByteEnsemble([one, one, one], [1, 2, 3])
    text = b"the cat sat"
    scores = ensemble.score(text, include_eos=True)
    np.testing.assert_allclose(
        scores.ensemble_logprobs, one.score(text, include_eos=True), atol=1e-12
    )
    greedy = ByteEnsemble([one]).generate(b"the ", 8)
    assert ensemble.generate(b"the ", 8) == greedy
    sampled = [
        model.generate(b"a", 6, temperature=1.0, generator=torch.Generator().manual_seed(3))
        for model in (ensemble, ByteEnsemble([one]))
    ]
    assert sampled[0] == sampled[1]


def test_ensemble_next_byte_distribution_sums_to_one_and_beats_jensen(members) -> None:  # type: ignore[no-untyped-def]
    ensemble = ByteEnsemble(members, [0.4, 0.6])
    states = ensemble.initial()
    for byte in b"that cat":
        pooled = ensemble.pool(ensemble.member_logprobs(states))
        assert pooled.shape == (257,)
        assert math.fsum(np.exp(pooled)) == pytest.approx(1.0, abs=1e-12)
        states = ensemble.advance(states, byte)
    report = bits_per_byte_report(score_bytes(ensemble, ["the cat", "a hat, that"]))
    assert report.num_bytes == len("the cat") + len("a hat, that")
    weighted = 0.4 * report.member_bpb[0] + 0.6 * report.member_bpb[1]
    assert report.ensemble_bpb <= weighted
    alone = bits_per_byte_report(score_bytes(ByteEnsemble(members[:1]), ["the cat", "a hat, that"]))
    assert alone.ensemble_bpb == pytest.approx(report.member_bpb[0], rel=1e-12)


def test_generation_stops_at_eos_or_the_budget(members) -> None:  # type: ignore[no-untyped-def]
    ensemble = ByteEnsemble(members)
    assert len(ensemble.generate(b"the", 5, stop_at_eos=False)) == 5
    assert ensemble.generate(b"the", 0) == b""
    with pytest.raises(ValueError, match="max_new_bytes"):
        ensemble.generate(b"", -1)
