"""generate: greedy equals HF generate token for token; sampling helpers against hand values."""

from __future__ import annotations

import pytest
import torch
from decoding_support import tiny_gemma3, tiny_llama

from ctd.decoding import CachedModel, generate, warp_probs


@pytest.mark.parametrize("build", [tiny_llama, tiny_gemma3])
def test_greedy_equals_hf_generate(build) -> None:  # type: ignore[no-untyped-def]
    model = build()
    prompt = torch.randint(3, 48, (3, 5), generator=torch.Generator().manual_seed(0))
    ours = generate(CachedModel(model), prompt, 20)
    theirs = model.generate(
        prompt, max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=0
    )
    assert torch.equal(ours, theirs[:, 5:])


def test_greedy_with_eos_pads_finished_rows_like_hf() -> None:
    model = tiny_llama()
    prompt = torch.randint(3, 48, (4, 3), generator=torch.Generator().manual_seed(3))
    free = generate(CachedModel(model), prompt, 12)
    eos = int(free[0, 4])  # the token row 0 emits 5th becomes EOS
    ours = generate(CachedModel(model), prompt, 12, eos_token_id=eos, pad_token_id=0)
    theirs = model.generate(
        prompt, max_new_tokens=12, do_sample=False, eos_token_id=eos, pad_token_id=0
    )
    assert torch.equal(ours, theirs[:, 3 : 3 + ours.shape[1]])
    assert int(ours[0, 4]) == eos
    assert bool((ours[0, 5:] == 0).all())


def test_warp_probs_by_hand() -> None:
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    torch.testing.assert_close(warp_probs(logits), torch.tensor([0.5, 0.3, 0.15, 0.05]))
    torch.testing.assert_close(warp_probs(logits, top_p=0.8), torch.tensor([0.625, 0.375, 0, 0]))
    torch.testing.assert_close(
        warp_probs(logits, top_p=0.81), torch.tensor([0.5, 0.3, 0.15, 0]) / 0.95
    )
    torch.testing.assert_close(warp_probs(logits, temperature=0), torch.tensor([1.0, 0, 0, 0]))
    squared = torch.tensor([0.25, 0.09, 0.0225, 0.0025])
    torch.testing.assert_close(warp_probs(logits, temperature=0.5), squared / squared.sum())
    with pytest.raises(ValueError, match="top_p"):
        warp_probs(logits, top_p=0)
