"""ByteLM: next-byte distributions against brute-force enumeration of tokenizations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ensemble_support import (
    brute_force_logprob,
    byte_spelling_ids,
    fixture_tokenizer,
    tiny_bpe,
    tiny_llama,
)
from tokenizers import Tokenizer, normalizers
from transformers import PreTrainedTokenizerFast

from ctd.ensemble import byte_lm
from ctd.ensemble.byte_lm import EOS_INDEX, ByteLM
from ctd.models.byte_level import to_byte_level


@pytest.fixture(scope="module")
def bpe():  # type: ignore[no-untyped-def]
    tokenizer = tiny_bpe()
    return tokenizer, tiny_llama(len(tokenizer))


@pytest.mark.parametrize("text", [b"the", b"a cat", b"that ", b"hat,"])
def test_exact_logprob_with_eos_is_the_sum_over_all_tokenizations(bpe, text) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model = bpe
    ours = ByteLM(model, tokenizer, beam_width=None).score(text, include_eos=True).sum()
    context = [tokenizer.bos_token_id]
    reference = brute_force_logprob(model, tokenizer, text, context=context, with_eos=True)
    assert ours == pytest.approx(reference, abs=1e-9)
    canonical = tokenizer(text.decode(), add_special_tokens=False).input_ids
    spelled = byte_spelling_ids(tokenizer)
    allowed = [*spelled, tokenizer.eos_token_id]
    full = torch.tensor([[*context, *canonical]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=full).logits[0, :, allowed].double(), -1)
    column = {index: i for i, index in enumerate(allowed)}
    steps = [logprobs[t, column[index]] for t, index in enumerate([*canonical, 1])]
    assert ours >= float(sum(steps)) - 1e-12


@pytest.mark.parametrize("text", [b"the cat", b"a hat, t"])
def test_exact_prefix_logprob_is_the_sum_over_covers(bpe, text) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model = bpe
    ours = ByteLM(model, tokenizer, beam_width=None).score(text).sum()
    reference = brute_force_logprob(
        model, tokenizer, text, context=[tokenizer.bos_token_id], with_eos=False
    )
    assert ours == pytest.approx(reference, abs=1e-9)


@pytest.mark.parametrize("beam_width", [None, 1, 3])
def test_next_byte_distributions_with_eos_sum_to_one(bpe, beam_width) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model = bpe
    lm = ByteLM(model, tokenizer, beam_width=beam_width)
    state = lm.initial()
    for byte in b"then the rat":
        logprobs = lm.next_byte_logprobs(state)
        assert logprobs.shape == (257,)
        assert math.fsum(np.exp(logprobs)) == pytest.approx(1.0, abs=1e-12)
        state = lm.advance(state, byte)
    if beam_width is None:  # a narrow beam may hold only hypotheses inside a token
        assert np.exp(lm.next_byte_logprobs(state))[EOS_INDEX] > 0


def test_a_wide_beam_is_exact_and_a_narrow_one_close(bpe) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model = bpe
    text = b"the cat sat"
    exact = ByteLM(model, tokenizer, beam_width=None).score(text).sum()
    assert ByteLM(model, tokenizer, beam_width=10_000).score(text).sum() == pytest.approx(exact)
    narrow = ByteLM(model, tokenizer, beam_width=2).score(text).sum()
    assert narrow != exact
    assert abs(narrow - exact) < 0.2 * abs(exact)


def test_byte_only_vocabulary_gives_the_token_probabilities(bpe) -> None:  # type: ignore[no-untyped-def]
    byte_tokenizer = to_byte_level(bpe[0])
    model = tiny_llama(len(byte_tokenizer), seed=3)
    text = "a cat"
    ids = byte_tokenizer(text, add_special_tokens=False).input_ids
    context = [byte_tokenizer.bos_token_id]
    allowed = list(range(256)) + [byte_tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([context + ids])).logits[0].double()
    logprobs = torch.log_softmax(logits[:, allowed], -1)
    expected = [float(logprobs[t, token]) for t, token in enumerate(ids)]
    ours = ByteLM(model, byte_tokenizer, beam_width=1).score(text.encode())
    np.testing.assert_allclose(ours, expected, atol=1e-10)


def test_dummy_prefix_space_is_conditioned_on() -> None:
    tokenizer = fixture_tokenizer("phi3", bos="<s>", eos="</s>")
    model = tiny_llama(len(tokenizer), seed=5, width=16)
    text = b"hi"
    lm = ByteLM(model, tokenizer, beam_width=None)
    assert lm.trie.prepends_space
    ours = lm.score(text, include_eos=True).sum()
    context = [tokenizer.bos_token_id]
    joint = brute_force_logprob(model, tokenizer, b" " + text, context=context, with_eos=True)
    space = brute_force_logprob(model, tokenizer, b" ", context=context, with_eos=False)
    assert ours == pytest.approx(joint - space, abs=1e-9)


def test_tokenizers_that_cannot_be_mapped_onto_bytes_are_refused(bpe) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model = bpe
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.normalizer = normalizers.Lowercase()
    lowered = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<eos>", bos_token="<bos>"
    )
    with pytest.raises(ValueError, match="cannot be mapped onto bytes: its normalizer"):
        ByteLM(model, lowered)
    with pytest.raises(ValueError, match="beam_width"):
        ByteLM(model, tokenizer, beam_width=0)


def test_a_narrow_beam_never_rules_out_a_byte(bpe) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model = bpe
    lm = ByteLM(model, tokenizer, beam_width=1)
    state = lm.initial()
    for byte in b"that|rat, sat~on":
        assert np.isfinite(lm.next_byte_logprobs(state)[:256]).all()  # every byte is a token
        state = lm.advance(state, byte)


def _canonical_logprob(model, tokenizer, text: str) -> float:  # type: ignore[no-untyped-def]
    """log q(canonical ids | BOS) by one plain forward over the whole vocabulary (reference)."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    full = torch.tensor([[tokenizer.bos_token_id, *ids]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=full).logits[0].double(), -1)
    return float(sum(logprobs[t, index] for t, index in enumerate(ids)))


@pytest.mark.parametrize("seed", [0, 4])
@pytest.mark.parametrize("beam_width", [1, 2, 3])
@pytest.mark.parametrize("text", ["a hat, a cat, that mat", "then the rat ran at the cat"])
def test_a_beam_never_scores_a_text_below_its_canonical_tokenization(
    seed, beam_width, text
) -> None:  # type: ignore[no-untyped-def]
    # narrow beams on these texts lose the canonical path (by up to 34 nats) unless it is kept
    tokenizer = tiny_bpe()
    model = tiny_llama(len(tokenizer), seed=seed)
    canonical = _canonical_logprob(model, tokenizer, text)
    lm = ByteLM(model, tokenizer, beam_width=beam_width)
    assert lm.score(text.encode()).sum() >= canonical - 1e-9
    assert lm.score(text.encode(), include_eos=True)[:-1].sum() >= canonical - 1e-9


def test_the_canonical_path_of_a_dummy_prefix_tokenizer_is_kept() -> None:
    tokenizer = fixture_tokenizer("phi3", bos="<s>", eos="</s>")
    model = tiny_llama(len(tokenizer), seed=5, width=16)
    text = "hi there, it is"
    lm = ByteLM(model, tokenizer, beam_width=1)
    assert lm.trie.prepends_space  # the canonical ids spell " hi there, it is"
    # P(text | space) = P(" " text) / P(" ") >= q(canonical ids of " " text)
    assert lm.score(text.encode()).sum() >= _canonical_logprob(model, tokenizer, text) - 1e-9
    state = lm.initial(text)
    for byte in text.encode():  # the plan's byte positions are the text's, after the space
        state = lm.advance(state, byte)
        assert [h.canonical for h in state.hypotheses].count(True) == 1
    ends = [h for h in state.hypotheses if h.canonical][0]
    assert ends.pending == b""
    assert list(ends.node.token_ids) == tokenizer(text, add_special_tokens=False).input_ids
    with pytest.raises(ValueError, match="needs UTF-8 bytes"):
        lm.score(b"\xff\xfe")
    assert np.isfinite(lm.score(b"\xff\xfe", keep_canonical=False)).all()


def test_compacting_the_token_tree_changes_no_probability(bpe, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model = bpe
    text = b"then the rat ran at the cat, a hat, that mat"
    kept = ByteLM(model, tokenizer, beam_width=3).score(text)
    monkeypatch.setattr(byte_lm, "COMPACT_SLACK", 0)
    lm = ByteLM(model, tokenizer, beam_width=3)
    state = lm.initial(text.decode())
    for byte in text:
        state = lm.advance(state, byte)
    assert state.tree.size < state.tree.tokens_forwarded  # slots were dropped
    np.testing.assert_allclose(lm.score(text), kept, rtol=0, atol=1e-10)


def test_lanes_on_one_tree_advance_as_each_alone(bpe, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two texts after two contexts on one tree: every next-byte distribution as if alone."""
    tokenizer, model = bpe
    monkeypatch.setattr(byte_lm, "COMPACT_SLACK", -(10**6))  # compact whenever a slot dies
    lm = ByteLM(model, tokenizer, beam_width=3)
    contexts = [tokenizer("the rat", add_special_tokens=False).input_ids, [5]]
    texts = [b" sat on a hat", b"then a cat ran"]
    lanes = lm.initial_after_batch(contexts)
    assert lanes[0].tree is lanes[1].tree
    alone = [lm.initial_after(ids) for ids in contexts]
    for position in range(len(texts[0])):
        for lane, single in zip(lanes, alone, strict=True):
            np.testing.assert_allclose(
                lm.next_byte_logprobs(lane), lm.next_byte_logprobs(single), rtol=0, atol=1e-10
            )
        next_bytes = [text[position] for text in texts]
        lanes = lm.advance_lanes(lanes, next_bytes)
        alone = [lm.advance(s, b) for s, b in zip(alone, next_bytes, strict=True)]
    assert lanes[0].tree.compactions > 0


def test_a_state_left_out_of_its_trees_advance_goes_stale(bpe, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model = bpe
    monkeypatch.setattr(byte_lm, "COMPACT_SLACK", -(10**6))
    lm = ByteLM(model, tokenizer, beam_width=2)
    root = lm.initial_after([5])
    first, second = lm.fork(root, share_tree=True), lm.fork(root, share_tree=True)
    with pytest.raises(ValueError, match="given twice"):
        lm.advance_lanes([first, first], [0x61, 0x61])
    first = lm.fork(root, share_tree=True)
    for byte in b"the cat":
        first = lm.advance(first, byte)
    assert second.stale
    with pytest.raises(ValueError, match="stale"):
        lm.advance(second, 0x61)
    with pytest.raises(ValueError, match="stale"):
        lm.fork(second)
    with pytest.raises(ValueError, match="one byte per state"):
        lm.advance_lanes([first], [])
