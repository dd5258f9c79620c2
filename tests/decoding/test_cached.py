"""CachedModel: cached logits equal one full forward; rollback equals never having stepped."""

from __future__ import annotations

import pytest
import torch
from decoding_support import tiny_gemma3, tiny_llama

from ctd.decoding import CachedModel


def _full_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("build", [tiny_llama, tiny_gemma3])
def test_prefill_then_steps_equal_one_full_forward(build) -> None:  # type: ignore[no-untyped-def]
    model = build()
    ids = torch.randint(3, 48, (2, 11), generator=torch.Generator().manual_seed(1))
    cached = CachedModel(model)
    pieces = [cached.prefill(ids[:, :4]), cached.step(ids[:, 4:5]), cached.step(ids[:, 5:11])]
    assert cached.length == 11
    torch.testing.assert_close(torch.cat(pieces, dim=1), _full_logits(model, ids))


@pytest.mark.parametrize("build", [tiny_llama, tiny_gemma3])
def test_rollback_equals_never_having_stepped(build) -> None:  # type: ignore[no-untyped-def]
    """Step 5 wrong tokens past the sliding window (4), roll back, step the right ones."""
    model = build()
    ids = torch.randint(3, 48, (2, 14), generator=torch.Generator().manual_seed(2))
    cached = CachedModel(model)
    cached.prefill(ids[:, :6])
    cached.step(torch.full((2, 5), 7))
    cached.rollback(5)
    assert cached.length == 6
    after = cached.step(ids[:, 6:9])
    cached.step(torch.full((2, 1), 9))
    cached.truncate(9)
    tail = cached.step(ids[:, 9:14])
    expected = _full_logits(model, ids)
    torch.testing.assert_close(after, expected[:, 6:9])
    torch.testing.assert_close(tail, expected[:, 9:14])


def test_left_padded_rows_match_their_unpadded_forward() -> None:
    model = tiny_llama()
    short = torch.tensor([[5, 6, 7]])
    long = torch.tensor([[8, 9, 10, 11, 12]])
    ids = torch.cat([torch.cat([torch.zeros(1, 2, dtype=torch.long), short], 1), long])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    cached = CachedModel(model)
    first = cached.prefill(ids, mask)
    nxt = cached.step(torch.tensor([[13], [14]]))
    short_full = _full_logits(model, torch.tensor([[5, 6, 7, 13]]))
    torch.testing.assert_close(first[0, 2:], short_full[0, :3])
    torch.testing.assert_close(nxt[0, 0], short_full[0, 3])
    torch.testing.assert_close(
        nxt[1, 0], _full_logits(model, torch.tensor([[8, 9, 10, 11, 12, 14]]))[0, 5]
    )


def test_reset_counts_and_bad_calls() -> None:
    cached = CachedModel(tiny_llama())
    with pytest.raises(RuntimeError, match="before prefill"):
        cached.step(torch.tensor([[3]]))
    cached.prefill(torch.tensor([[3, 4]]))
    cached.step(torch.tensor([[5]]))
    assert cached.forward_calls == 2
    with pytest.raises(ValueError, match="cannot roll back 4 of 3"):
        cached.rollback(4)
    with pytest.raises(ValueError, match="step needs ids of shape"):
        cached.step(torch.tensor([[3], [4]]))
    with pytest.raises(ValueError, match="prefill needs ids"):
        cached.prefill(torch.tensor([3, 4]))
    cached.reset()
    assert cached.length == 0
