"""Byte spans of lossy tokenizers (NFKC Unigram, uncased WordPiece) against independent oracles.

Text those tokenizers can map is drawn from their own vocabulary (so no `<unk>` can occur and
the normalizer is the identity, or plain ASCII lowercasing); its spans are checked token by
token against the tokenizer's own vocabulary strings. Mixed text (with characters outside the
vocabulary or that NFKC rewrites) either maps, with the same check, or raises a `ValueError`
whose message names the reason the tokenizer's own output gives.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import pytest
from alignment_support import trained_tokenizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from ctd.alignment import TokenizedText, encode

UNK = {"unigram": "<unk>", "wordpiece": "[UNK]"}
# Characters outside both vocabularies, or that the normalizers rewrite: "ﬁ" -> "fi" (NFKC),
# "Ⅻ" -> "XII" (NFKC), "İ" -> "i̇" (lowercase, 2 characters), "e\u0301" (a combining accent).
FOREIGN = ["ℵ", "Ω", "😀", "ﬁ", "Ⅻ", "İ", "\u0301", "\u00a0", "Ⅷ", "²"]


@cache
def alphabet(name: str) -> tuple[list[str], list[str]]:
    """(word-initial, word-continuing) single characters of the vocabulary, NFKC-stable only."""
    vocab = trained_tokenizer(name).get_vocab()
    if name == "unigram":
        chars = {p for p in vocab if len(p) == 1 and p != "▁" and p != UNK[name]}
        chars = {c for c in chars if unicodedata.normalize("NFKC", c) == c}
        return sorted(chars), sorted(chars)
    # WordPiece: "c" may start a word, "##c" continue one (a word needing a missing "##c" is
    # one [UNK]). Letters only inside words; punctuation and CJK are words of their own.
    initial = {p for p in vocab if len(p) == 1 and not p.isspace()}
    continuing = {p[2:] for p in vocab if p.startswith("##") and len(p) == 3}
    return sorted(initial), sorted(c for c in continuing if c.isalnum() and c in initial)


@st.composite
def unigram_text(draw: st.DrawFn) -> str:
    chars, _ = alphabet("unigram")
    return draw(st.text(alphabet=st.sampled_from([*chars, " ", " ", " "]), max_size=40))


@st.composite
def wordpiece_text(draw: st.DrawFn) -> str:
    """Words over the vocabulary's letters (some capitalised), separated by whitespace runs."""
    initial, continuing = alphabet("wordpiece")
    ascii_words = [c for c in initial if c.isascii() and c.isalpha()]
    words = []
    for _ in range(draw(st.integers(0, 6))):
        first = draw(st.sampled_from(initial))
        rest = draw(st.text(alphabet=st.sampled_from(continuing), max_size=6))
        # punctuation / CJK: a word on its own (BertPreTokenizer splits it off)
        word = first + rest if first.isalnum() and not _is_cjk(first) else first
        if draw(st.booleans()) and word[0] in ascii_words:
            word = word[0].upper() + word[1:]  # uncased: "H" is lowercased to "h"
        words.append(word)
        words.append(draw(st.sampled_from([" ", "  ", "\t", "\n", " \n "])))
    lead = draw(st.sampled_from(["", " ", "\n"]))
    return lead + "".join(words)


@st.composite
def mixed_text(draw: st.DrawFn, name: str) -> str:
    chars, _ = alphabet(name)
    pool = [*chars, " ", " ", *FOREIGN]
    return draw(st.text(alphabet=st.sampled_from(pool), min_size=1, max_size=30))


def _is_cjk(char: str) -> bool:
    return 0x3000 <= ord(char) <= 0x9FFF or 0xAC00 <= ord(char) <= 0xD7AF


def expected_pieces(name: str, tokenizer: Tokenizer, text: str, tokens: TokenizedText) -> None:
    """Each text token's span, normalized as the tokenizer does, is the token's vocabulary string.

    Oracle: `id_to_token` (not ctd's byte table) and the tokenizer's own `normalize_str` on the
    original substring. Unigram: " " is "▁" and the first token may carry the dummy-prefix "▁".
    WordPiece: "##" marks a continuation; dropped whitespace belongs to the next token (and to
    the last token at the end of the text), so a span is whitespace + the token's letters.
    """
    data = text.encode("utf-8")
    spans = [
        (int(s), int(e), int(i))
        for s, e, i, sp in zip(
            tokens.byte_starts, tokens.byte_ends, tokens.input_ids, tokens.is_special, strict=True
        )
        if not sp
    ]
    assert spans == sorted(spans)
    assert all(s <= e for s, e, _ in spans)
    assert b"".join(data[s:e] for s, e, _ in spans) == (data if spans else b""), "no tiling"
    normalize = tokenizer.normalizer.normalize_str
    for position, (start, end, index) in enumerate(spans):
        piece = tokenizer.id_to_token(index)
        original = data[start:end].decode("utf-8")
        if name == "unigram":
            image = normalize(original).replace(" ", "▁")
            allowed = (
                {image, "▁" + image} if position == 0 and not text.startswith(" ") else {image}
            )
            assert piece in allowed, (text, position, piece, original)
        else:
            core = original.lstrip()
            if position == len(spans) - 1:
                core = core.rstrip()
            assert not any(c.isspace() for c in core), (text, position, original)
            image = "".join(normalize(core).split())  # CJK characters get spaces around them
            assert piece.removeprefix("##") == image, (text, position, piece, original)
            if piece.startswith("##"):  # a continuation directly follows its word's letters
                assert start > 0, (text, position, piece)
                assert not original[0].isspace(), (text, position, piece)
    if not spans:
        assert text.strip() == "" or name == "unigram" and text == "", text


@pytest.mark.parametrize(
    ("name", "strategy"), [("unigram", unigram_text()), ("wordpiece", wordpiece_text())]
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_vocabulary_text_always_maps_exactly(name: str, strategy, data) -> None:
    tokenizer = trained_tokenizer(name)
    text = data.draw(strategy)
    assert tokenizer.token_to_id(UNK[name]) not in tokenizer.encode(text).ids, text  # premise
    (tokens,) = encode(tokenizer, [text], add_special_tokens=False)  # must not raise
    expected_pieces(name, tokenizer, text, tokens)


@pytest.mark.parametrize("name", ["unigram", "wordpiece"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mixed_text_maps_or_names_the_reason(name: str, data) -> None:
    tokenizer = trained_tokenizer(name)
    text = data.draw(mixed_text(name))
    has_unk = tokenizer.token_to_id(UNK[name]) in tokenizer.encode(text).ids
    rewritten = tokenizer.normalizer.normalize_str(text) != (
        text if name == "unigram" else text.lower()
    )
    try:
        (tokens,) = encode(tokenizer, [text], add_special_tokens=False)
    except ValueError as error:
        message = str(error)
        if has_unk:  # the unknown token is named, with the text
            assert f"token {UNK[name]!r} (special or unknown) does not occur" in message
            assert "no exact byte span exists" in message
        else:  # otherwise only a normalizer that rewrote characters may be the reason
            assert rewritten, (text, message)
            assert (
                "normalizer NFKC" in message if name == "unigram" else "BertNormalizer" in message
            )
        assert repr(text[:40]) in message, message
        return
    assert not has_unk, text
    expected_pieces(name, tokenizer, text, tokens)


def hand_unigram() -> Tokenizer:
    """NFKC + Metaspace Unigram with a vocabulary small enough to segment by hand."""
    pieces = ["<unk>", "▁", "▁hel", "lo", "▁wor", "ld", "f", "i", "n", "e", "h", "l", "o", "w"]
    scores = {"<unk>": 0.0, "▁hel": -1.0, "lo": -1.0, "▁wor": -1.0, "ld": -1.0}
    tokenizer = Tokenizer(models.Unigram([(p, scores.get(p, -5.0)) for p in pieces], unk_id=0))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    return tokenizer


@pytest.mark.parametrize(
    ("tokenizer", "text", "reason"),
    [
        (
            trained_tokenizer("unigram"),  # its "<unk>" is an added special token
            "ℵ hello",
            "token '<unk>' (special or unknown) does not occur in the text",
        ),
        # NFKC turns "ﬁ" into "fi"; the tokens "▁" f i n e cut between f and i, inside "ﬁ"
        (
            hand_unigram(),
            "ﬁne",
            "a token boundary falls inside a character sequence that normalizer NFKC",
        ),
        (
            trained_tokenizer("wordpiece"),
            "hello ℵ",
            "token '[UNK]' (special or unknown) does not occur in the text",
        ),
    ],
)
def test_unmappable_text_names_the_reason(tokenizer: Tokenizer, text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        encode(tokenizer, [text])


def test_unknown_unigram_piece_is_named() -> None:
    with pytest.raises(ValueError, match="unknown"):
        encode(hand_unigram(), ["ℵ hello"])


def spans(tokens: TokenizedText) -> list[tuple[int, int]]:
    return list(zip(tokens.byte_starts.tolist(), tokens.byte_ends.tolist(), strict=True))


def test_hand_worked_spans() -> None:
    # hello | , | world | ! : the dropped space before "World" belongs to "world"
    (tokens,) = encode(trained_tokenizer("wordpiece"), ["Hello, World!"], add_special_tokens=False)
    assert tokens.input_ids.tolist() == [
        trained_tokenizer("wordpiece").token_to_id(p) for p in ["hello", ",", "world", "!"]
    ]
    assert spans(tokens) == [(0, 5), (5, 6), (6, 12), (12, 13)]
    # "▁hello▁world" -> ▁hel | lo | ▁wor | ld (score -4 beats any split with a -5 piece);
    # "▁hel" carries the dummy prefix, so it covers "hel" = bytes 0..3; "▁wor" = " wor" 5..9
    (tokens,) = encode(hand_unigram(), ["hello world"], add_special_tokens=False)
    assert tokens.input_ids.tolist() == [2, 3, 4, 5]
    assert spans(tokens) == [(0, 3), (3, 5), (5, 9), (9, 11)]
    # "  hello" (7 bytes): no dummy prefix (the text already starts with "▁"); ▁ | ▁hel | lo,
    # "▁" = the first space (0..1), "▁hel" = " hel" (1..5), "lo" (5..7)
    (tokens,) = encode(hand_unigram(), ["  hello"], add_special_tokens=False)
    assert tokens.input_ids.tolist() == [1, 2, 3]
    assert spans(tokens) == [(0, 1), (1, 5), (5, 7)]
