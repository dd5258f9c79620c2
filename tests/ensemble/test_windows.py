"""Byte-level bits per byte in windows: the cuts, brute force per window, one window = one beam."""

from __future__ import annotations

import math
import random
import unicodedata

import numpy as np
import pytest
from ensemble_support import brute_force_logprob, fixture_tokenizer, tiny_bpe, tiny_llama

from ctd.ensemble import ByteEnsemble, ByteLM, byte_lm, score_bytes
from ctd.ensemble.scoring import context_cut, window_starts


@pytest.mark.parametrize(
    ("text", "window_bytes", "expected"),
    [
        ("the cat sat on the mat", 8, ["the cat", " sat on", " the mat"]),
        ("Hello, world. This is", 16, ["Hello, world.", " This is"]),  # before the last space
        ("abcdefghij", 4, ["abcd", "efgh", "ij"]),  # no space, no mark: where it is full
        ("日本語のテキスト。これは", 12, ["日本語の", "テキスト", "。これは"]),  # 3-byte characters
        ("日本語。テキストです", 13, ["日本語。", "テキスト", "です"]),  # after a mark, half full
        ("a hat", 4, ["a ha", "t"]),  # "a" alone would be under half full
        ("a" + " " * 9 + "b c", 5, ["a", " " * 9 + "b", " c"]),  # a long run of spaces
        ("", 8, []),
    ],
)
def test_window_starts_hand_worked(text, window_bytes, expected) -> None:  # type: ignore[no-untyped-def]
    starts = [*window_starts(text, window_bytes), len(text)]
    assert [text[a:b] for a, b in zip(starts, starts[1:], strict=False)] == expected


def _reference_starts(text: str, window_bytes: int) -> list[int]:
    """Brute force: from each start, rank every place the next window may start, take the best."""

    def size(a: int, c: int) -> int:
        return len(text[a:c].encode())

    def rank(a: int, c: int) -> tuple[int, int]:  # lower is better
        half_full = 2 * size(a, c) >= window_bytes
        if half_full and text[c].isspace():
            return (0, -c)
        if half_full and unicodedata.category(text[c - 1]).startswith("P"):
            return (1, -c)
        return (2, -c)

    starts = [0] if text else []
    while starts and size(starts[-1], len(text)) > window_bytes:
        a = starts[-1]
        legal = [c for c in range(a + 1, len(text)) if not text[c - 1].isspace()]
        fits = [c for c in legal if size(a, c) <= window_bytes]
        if fits:
            starts.append(min(fits, key=lambda c: rank(a, c)))
        elif legal:  # a run of whitespace longer than the window
            starts.append(legal[0])
        else:
            break
    return starts


def test_window_starts_on_random_texts_equal_brute_force_and_tile() -> None:
    rng = random.Random(0)
    alphabet = ["a", "b", " ", " ", "\n", ",", ".", "é", "語", "。", "🙂"]
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        window_bytes = rng.randint(4, 12)
        starts = window_starts(text, window_bytes)
        assert starts == _reference_starts(text, window_bytes), (text, window_bytes)
        bounds = [*starts, len(text)]
        windows = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        assert "".join(windows) == text
        assert all(windows)
        assert all(a == 0 or not text[a - 1].isspace() for a in starts)


def test_window_bytes_below_a_character_is_an_error() -> None:
    with pytest.raises(ValueError, match="window_bytes must be at least 4"):
        window_starts("the cat", 3)


@pytest.fixture(scope="module")
def two_members():  # type: ignore[no-untyped-def]
    first, second = tiny_bpe(280), tiny_bpe(300, ["hat cat bat", "that rat sat"])
    return [(tiny_llama(len(first), seed=1), first), (tiny_llama(len(second), seed=2), second)]


def _prefix_logprobs(model, tokenizer, data: bytes, context: list[int]) -> list[float]:  # type: ignore[no-untyped-def]
    """Brute-force log P(data[j] | context tokens, data[:j]) over tokenizations, per byte."""
    covers = [0.0] + [
        brute_force_logprob(model, tokenizer, data[: j + 1], context=context, with_eos=False)
        for j in range(len(data))
    ]
    return [b - a for a, b in zip(covers, covers[1:], strict=False)]


def test_exact_windows_equal_brute_force_after_the_tokens_before_them(
    two_members,
) -> None:  # type: ignore[no-untyped-def]
    text = "the cat sat"  # windows "the", " cat", " sat"
    assert window_starts(text, 5) == [0, 3, 7]
    weights = [1.0, 3.0]
    lms = [ByteLM(model, tokenizer, beam_width=None) for model, tokenizer in two_members]
    (ours,) = score_bytes(ByteEnsemble(lms, weights), [text], window_bytes=5)
    expected = []
    for model, tokenizer in two_members:
        per_byte: list[float] = []
        for start, end in [(0, 3), (3, 7), (7, 11)]:
            before = tokenizer(text[:start], add_special_tokens=False).input_ids
            context = [tokenizer.bos_token_id, *before]
            per_byte += _prefix_logprobs(model, tokenizer, text[start:end].encode(), context)
        expected.append(per_byte)
    np.testing.assert_allclose(ours.member_logprobs.numpy(), np.array(expected), atol=1e-9)
    pooled = [
        math.log(0.25 * math.exp(a) + 0.75 * math.exp(b))
        for a, b in zip(expected[0], expected[1], strict=True)
    ]
    np.testing.assert_allclose(ours.ensemble_logprobs.numpy(), pooled, atol=1e-9)
    assert ours.num_bytes == len(text)


@pytest.mark.parametrize(
    ("text", "cases"),
    [
        ("the cat sat", [(7, 8, 7), (3, 0, 3), (0, 8, 0)]),  # clean: no warm-up
        ("the catsat", [(7, 8, 3), (7, 3, 4), (7, 0, 7)]),  # back to a space, or the budget
        ("日本語。テキスト", [(7, 16, 4), (7, 6, 5)]),  # after a mark; 3-byte characters
    ],
)
def test_context_cut_hand_worked(text, cases) -> None:  # type: ignore[no-untyped-def]
    for window_start, warmup_bytes, expected in cases:
        assert context_cut(text, window_start, warmup_bytes) == expected


@pytest.mark.parametrize(("warmup_bytes", "context_end"), [(16, 0), (2, 2), (0, 4)])
def test_exact_warm_up_windows_equal_brute_force(two_members, warmup_bytes, context_end) -> None:  # type: ignore[no-untyped-def]
    """A window inside a word: tokens up to `context_end`, then its bytes unscored."""
    text = "thecat"  # windows "thec", "at"; the second starts inside the word
    assert window_starts(text, 4) == [0, 4]
    model, tokenizer = two_members[0]
    lm = ByteLM(model, tokenizer, beam_width=None)
    (ours,) = score_bytes(ByteEnsemble([lm]), [text], window_bytes=4, warmup_bytes=warmup_bytes)
    bos = [tokenizer.bos_token_id]
    first = _prefix_logprobs(model, tokenizer, b"thec", bos)
    head = tokenizer(text[:context_end], add_special_tokens=False).input_ids
    second = _prefix_logprobs(model, tokenizer, text[context_end:].encode(), [*bos, *head])
    expected = [*first, *second[4 - context_end :]]
    np.testing.assert_allclose(ours.ensemble_logprobs.numpy(), expected, atol=1e-9)


@pytest.mark.parametrize("prepends_space", [False, True])
def test_one_window_a_text_is_the_whole_text_beam(two_members, prepends_space, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Windows as long as the texts: every text starts from BOS, as `ByteEnsemble.score`."""
    monkeypatch.setattr(byte_lm, "COMPACT_SLACK", 0)  # compact often: lanes keep each other's slots
    model, tokenizer = two_members[0]
    lms = [ByteLM(model, tokenizer, beam_width=2)]
    if prepends_space:  # a dummy-prefix tokenizer: its empty contexts get trees of their own
        phi3 = fixture_tokenizer("phi3", bos="<s>", eos="</s>")
        lms.append(ByteLM(tiny_llama(len(phi3), seed=4), phi3, beam_width=2))
        assert lms[1].trie.prepends_space
    texts = ["the cat sat on the mat", "a rat", "that hat, that bat"]
    ensemble = ByteEnsemble(lms)
    whole = score_bytes(ensemble, texts)
    windowed = score_bytes(ensemble, texts, window_bytes=64)
    for ours, reference in zip(windowed, whole, strict=True):
        np.testing.assert_allclose(ours.member_logprobs, reference.member_logprobs, atol=1e-9)
        np.testing.assert_allclose(ours.ensemble_logprobs, reference.ensemble_logprobs, atol=1e-9)


def test_windows_stepped_together_score_as_one_lane_at_a_time(two_members) -> None:  # type: ignore[no-untyped-def]
    lms = [ByteLM(model, tokenizer, beam_width=3) for model, tokenizer in two_members]
    ensemble = ByteEnsemble(lms, [2.0, 1.0])
    texts = ["the cat sat on the mat, then a rat sat on the hat", "", "that bat"]
    together = score_bytes(ensemble, texts, window_bytes=12, max_lanes=32)
    calls = [lm.forward_calls for lm in lms]
    alone = score_bytes(ensemble, texts, window_bytes=12, max_lanes=1)
    assert all(
        lm.forward_calls - before > 2 * before for lm, before in zip(lms, calls, strict=True)
    )
    for ours, reference in zip(together, alone, strict=True):
        assert ours.member_logprobs.shape == (2, ours.num_bytes)
        np.testing.assert_allclose(ours.member_logprobs, reference.member_logprobs, atol=1e-9)
        np.testing.assert_allclose(ours.ensemble_logprobs, reference.ensemble_logprobs, atol=1e-9)
