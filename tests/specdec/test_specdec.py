"""Speculative decoding on tiny HF models: greedy equals HF generate, identical drafters, bounds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "decoding"))
from decoding_support import tiny_gemma3, tiny_llama  # noqa: E402

from ctd.decoding import CachedModel  # noqa: E402
from ctd.metrics.acceptance import (  # noqa: E402
    block_efficiency,
    expected_block_efficiency,
    measured_acceptance,
)
from ctd.specdec import TorchRandom, speculative_generate  # noqa: E402


@pytest.mark.parametrize("build", [tiny_llama, tiny_gemma3])
@pytest.mark.parametrize("gamma", [1, 4])
def test_greedy_equals_hf_generate(build, gamma: int) -> None:  # type: ignore[no-untyped-def]
    target, drafter = build(seed=0), build(seed=1)
    prompt = [5, 9, 11, 3]
    expected = target.generate(
        torch.tensor([prompt]),
        max_new_tokens=25,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )[0, len(prompt) :].tolist()
    out = speculative_generate(
        CachedModel(target), CachedModel(drafter), prompt, gamma=gamma, max_new_tokens=25
    )
    assert out.token_ids == expected
    assert sum(a + 1 for a in out.accepted_per_block) >= 25  # every block adds accepted + 1


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_identical_drafter_accepts_everything(temperature: float) -> None:
    model = tiny_llama()
    gamma = 3
    out = speculative_generate(
        CachedModel(model), CachedModel(model), [4, 5, 6], gamma=gamma, max_new_tokens=20,
        temperature=temperature, random=TorchRandom(1),
    )  # fmt: skip
    assert out.accepted_per_block == [3, 3, 3, 3, 3]
    assert measured_acceptance(out.accepted_per_block, out.drafted_per_block) == 1.0
    assert block_efficiency(len(out.token_ids), len(out.accepted_per_block)) == gamma + 1
    # gamma drafter calls per block (the last draft is fed with the next block), + the prefill
    assert out.drafter_calls == 1 + gamma * 5
    assert out.target_calls == 1 + 5


def test_block_efficiency_lies_between_one_and_gamma_plus_one() -> None:
    target, drafter = tiny_llama(seed=0), tiny_llama(seed=5)
    for gamma in (1, 2, 5):
        out = speculative_generate(
            CachedModel(target), CachedModel(drafter), [7, 8], gamma=gamma, max_new_tokens=30,
            temperature=1.0, random=TorchRandom(gamma),
        )  # fmt: skip
        tau = block_efficiency(len(out.token_ids), len(out.accepted_per_block))
        assert 1.0 <= tau <= gamma + 1
        assert all(
            0 <= a <= d <= gamma
            for a, d in zip(out.accepted_per_block, out.drafted_per_block, strict=True)
        )


def test_eos_ends_the_answer_like_hf() -> None:
    target, drafter = tiny_llama(seed=0), tiny_llama(seed=2)
    free = speculative_generate(
        CachedModel(target), CachedModel(drafter), [4], gamma=3, max_new_tokens=15
    )
    eos = free.token_ids[6]
    expected = target.generate(
        torch.tensor([[4]]), max_new_tokens=15, do_sample=False, eos_token_id=eos, pad_token_id=0
    )[0, 1:].tolist()
    out = speculative_generate(
        CachedModel(target), CachedModel(drafter), [4], gamma=3, max_new_tokens=15, eos_token_id=eos
    )
    assert out.token_ids == expected[: expected.index(eos) + 1]


def test_bad_arguments() -> None:
    model = CachedModel(tiny_llama())
    with pytest.raises(ValueError, match="gamma must be at least 1"):
        speculative_generate(model, model, [3], gamma=0, max_new_tokens=4)
    with pytest.raises(ValueError, match="non-empty prompt"):
        speculative_generate(model, model, [], gamma=2, max_new_tokens=4)
    with pytest.raises(ValueError, match="gamma must be at least 1"):
        expected_block_efficiency(0.5, 0)
