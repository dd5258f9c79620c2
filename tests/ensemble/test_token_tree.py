"""TokenTree: tree attention over one cache against a plain forward over each prefix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from ensemble_support import tiny_llama

sys.path.insert(0, str(Path(__file__).parents[1] / "decoding"))
from decoding_support import tiny_gemma3  # noqa: E402

from ctd.ensemble.token_tree import TokenTree  # noqa: E402


def _plain_logits(model, ids: list[int]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Logits after `ids` from one forward without a cache (the reference)."""
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1]


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_branches_see_only_their_own_ancestors(kind: str) -> None:
    model = tiny_llama(50, seed=1) if kind == "llama" else tiny_gemma3(50, sliding_window=16)
    tree = TokenTree(model, [1, 2])
    torch.testing.assert_close(tree.root_logits, _plain_logits(model, [1, 2]))
    logits, (a, b) = tree.extend([tree.root_path, tree.root_path], [5, 7])
    logits, (ab, ba, bb) = tree.extend([b, a, b], [9, 3, 4])
    prefixes = [[1, 2, 7, 9], [1, 2, 5, 3], [1, 2, 7, 4]]
    for row, ids in enumerate(prefixes):
        torch.testing.assert_close(logits[row], _plain_logits(model, ids), rtol=0, atol=1e-12)
    assert tree.forward_calls == 3
    assert tree.tokens_forwarded == 2 + 2 + 3


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_contexts_added_to_one_tree_see_only_themselves(kind: str) -> None:
    model = tiny_llama(50, seed=3) if kind == "llama" else tiny_gemma3(50, sliding_window=16)
    tree = TokenTree(model, [1, 2])
    logits, other = tree.add_context([3, 4, 5])
    torch.testing.assert_close(logits, _plain_logits(model, [3, 4, 5]), rtol=0, atol=1e-12)
    assert other == [2, 3, 4]
    logits, _ = tree.extend([tree.root_path, other, other], [7, 8, 9])
    for row, ids in enumerate([[1, 2, 7], [3, 4, 5, 8], [3, 4, 5, 9]]):
        torch.testing.assert_close(logits[row], _plain_logits(model, ids), rtol=0, atol=1e-12)


def test_compaction_keeps_the_live_prefixes_exact() -> None:
    model = tiny_llama(50, seed=2)
    tree = TokenTree(model, [1])
    _, (a, b, c) = tree.extend([tree.root_path] * 3, [4, 5, 6])
    _, (ca, ac) = tree.extend([c, a], [7, 8])
    assert tree.size == 6
    live = tree.compact([ca, b])  # slots of a (4) and ac (8) go
    assert tree.size == 4
    logits, _ = tree.extend(live, [10, 11])
    torch.testing.assert_close(logits[0], _plain_logits(model, [1, 6, 7, 10]), rtol=0, atol=1e-12)
    torch.testing.assert_close(logits[1], _plain_logits(model, [1, 5, 11]), rtol=0, atol=1e-12)


def test_bad_calls_are_refused() -> None:
    tree = TokenTree(tiny_gemma3(50, sliding_window=3), [1])
    with pytest.raises(ValueError, match="one path per token"):
        tree.extend([tree.root_path], [])
    _, (a,) = tree.extend([tree.root_path], [4])
    _, (b,) = tree.extend([a], [5])
    with pytest.raises(ValueError, match="sliding window"):
        tree.extend([b], [6])
    with pytest.raises(ValueError, match="non-empty context"):
        TokenTree(tiny_llama(50), [])
    with pytest.raises(ValueError, match="longer than the sliding window"):
        tree.add_context([1, 2, 3, 4])
    with pytest.raises(ValueError, match="non-empty context"):
        tree.add_context([])
