import pytest
from alignment_support import (
    FIXTURE_NAMES,
    LOSSLESS_TRAINED,
    SHARED_NAMES,
    load_fixture_tokenizer,
    load_shared_tokenizer,
    reference_texts,
    trained_tokenizer,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctd.alignment import TokenizedText, encode, token_bytes

TRICKY = [
    "",
    " ",
    " Hello world",
    "Hello  world\n\n\t x",
    "👩‍👩‍👧 family ZWJ and e\u0301 combining",
    "中文文本 日本語 한국어",
    "مرحبا بالعالم שלום",
    "control \x00\x01\x7f chars\r\n",
    "   leading spaces and trailing   ",
    "<|endoftext|> inside <s> text </s>",
]
text_strategy = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from([" ", "\r", "\n", "\t", "\u200d", "\u0301", "👩", "中", "ש", "é", "\x00"]),
    ),
    max_size=40,
)


def check_spans(tokens: TokenizedText, text: str, *, lossless: bool, table=None) -> None:
    data = text.encode("utf-8")
    assert tokens.num_text_bytes == len(data)
    pieces = [
        (int(s), int(e))
        for s, e, sp in zip(tokens.byte_starts, tokens.byte_ends, tokens.is_special, strict=True)
        if not (sp and s == e)
    ]
    assert all(0 <= s <= e <= len(data) for s, e in pieces)
    if not pieces and table is not None and table.drops_whitespace:
        return  # BERT-style pipelines may delete a whole text (whitespace, private-use chars)
    assert b"".join(data[s:e] for s, e in pieces) == data, "spans do not tile the text"
    if lossless:  # each token's own bytes are its span (plus at most a dummy-prefix space)
        text_ids = tokens.input_ids[~tokens.is_special]
        metaspace = table.metaspace.encode() if table.metaspace else None
        for index, (s, e) in zip(text_ids, pieces_of_text(tokens), strict=True):
            own, piece = table.bytes_of[int(index)], data[s:e]
            if metaspace:  # a literal "▁" in the text is a space to the tokenizer
                piece = piece.replace(metaspace, b" ")
                own = own.replace(metaspace, b" ")
            assert own in (piece, b" " + piece), (own, data[s:e])


def pieces_of_text(tokens: TokenizedText) -> list[tuple[int, int]]:
    return [
        (int(s), int(e))
        for s, e, sp in zip(tokens.byte_starts, tokens.byte_ends, tokens.is_special, strict=True)
        if not sp
    ]


@pytest.mark.parametrize("name", LOSSLESS_TRAINED)
def test_trained_tokenizers_on_tricky_texts(name: str) -> None:
    tokenizer = trained_tokenizer(name)
    for tokens, text in zip(encode(tokenizer, TRICKY), TRICKY, strict=True):
        check_spans(tokens, text, lossless=True, table=token_bytes(tokenizer))


@pytest.mark.parametrize("name", LOSSLESS_TRAINED)  # lossy ones: test_encode_lossy.py
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text_strategy)
def test_trained_tokenizers_hypothesis(name: str, text: str) -> None:
    tokenizer = trained_tokenizer(name)
    (tokens,) = encode(tokenizer, [text])  # a lossless tokenizer maps every text
    check_spans(tokens, text, lossless=True, table=token_bytes(tokenizer))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_tokenizers(name: str) -> None:
    tokenizer = load_fixture_tokenizer(name)
    for tokens, text in zip(encode(tokenizer, TRICKY), TRICKY, strict=True):
        check_spans(tokens, text, lossless=True, table=token_bytes(tokenizer))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
@settings(max_examples=25, deadline=None)
@given(text=text_strategy)
def test_fixture_tokenizers_hypothesis(name: str, text: str) -> None:
    tokenizer = load_fixture_tokenizer(name)
    try:
        (tokens,) = encode(tokenizer, [text])
    except ValueError as error:  # allowed only where the vocabulary lacks one of the bytes
        single_bytes = {b for b in token_bytes(tokenizer).bytes_of if len(b) == 1}
        assert any(bytes([b]) not in single_bytes for b in text.encode()), error  # noqa: PT017
        assert "do not spell the text" in str(error)  # noqa: PT017
        return
    check_spans(tokens, text, lossless=True, table=token_bytes(tokenizer))


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_shared_tokenizers_on_llamacpp_reference_texts(name: str) -> None:
    tokenizer = load_shared_tokenizer(name)
    texts = reference_texts() + reference_texts("ggml-vocab-qwen2.gguf.inp") + TRICKY
    table = token_bytes(tokenizer)
    for tokens, text in zip(encode(tokenizer, texts), texts, strict=True):
        lossless = table.normalizer is None or text == __import__("unicodedata").normalize(
            "NFC", text
        )
        check_spans(tokens, text, lossless=lossless, table=table)


@pytest.mark.parametrize("name", ["qwen2", "gemma3", "llama2", "mistral-nemo-tekken"])
@settings(max_examples=20, deadline=None)
@given(text=text_strategy)
def test_shared_tokenizers_hypothesis(name: str, text: str) -> None:
    tokenizer = load_shared_tokenizer(name)
    try:
        (tokens,) = encode(tokenizer, [text])
    except ValueError as error:  # documented: a boundary inside a character NFC recomposed
        assert __import__("unicodedata").normalize("NFC", text) != text, error  # noqa: PT017
        assert "normalizer" in str(error)  # noqa: PT017
        return
    check_spans(tokens, text, lossless=False)


def test_nfc_normalizer_maps_back_to_original_bytes() -> None:
    tokenizer = load_shared_tokenizer("qwen2")
    text = "cafe\u0301 ok"
    (tokens,) = encode(tokenizer, [text])
    check_spans(tokens, text, lossless=False)
    assert tokens.byte_ends[-1] == len(text.encode())


def test_dummy_prefix_shrinks_first_token() -> None:
    tokenizer = load_fixture_tokenizer("mistral-v3-spm")
    (tokens,) = encode(tokenizer, ["Hello"])
    assert tokens.is_special[0]
    assert tokens.byte_starts[0] == tokens.byte_ends[0] == 0
    assert (tokens.byte_starts[1], tokens.byte_ends[1]) == (0, 5)  # "▁Hello" covers "Hello"


def test_leading_space_text() -> None:
    tokenizer = load_fixture_tokenizer("mistral-v3-spm")
    (tokens,) = encode(tokenizer, [" Hello"])
    check_spans(tokens, " Hello", lossless=True, table=token_bytes(tokenizer))
    assert tokens.byte_ends[-1] == 6


def test_add_special_tokens_false() -> None:
    tokenizer = load_fixture_tokenizer("phi3")
    (with_bos,) = encode(tokenizer, ["hi"])
    (without,) = encode(tokenizer, ["hi"], add_special_tokens=False)
    assert len(with_bos) == len(without) + 1
    assert with_bos.input_ids[0] == 1


def test_ids_match_the_tokenizer() -> None:
    tokenizer = load_fixture_tokenizer("gpt2")
    texts = ["Hello world", "ab  c"]
    for tokens, text in zip(encode(tokenizer, texts), texts, strict=True):
        assert tokens.input_ids.tolist() == tokenizer.encode(text).ids


def test_unmappable_unknown_token_raises() -> None:
    tokenizer = trained_tokenizer("wordpiece")
    with pytest.raises(ValueError, match="unknown"):
        encode(tokenizer, ["ℵ"])


@pytest.mark.parametrize(
    ("texts", "error"),
    [(None, TypeError), ("a str", TypeError), ([1, "a"], TypeError), (["\ud800"], ValueError)],
)
def test_bad_texts(texts: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode(load_fixture_tokenizer("gpt2"), texts)  # type: ignore[arg-type]


def test_slow_tokenizer_is_refused() -> None:
    class SlowTokenizer:
        pass

    with pytest.raises(TypeError, match="not a fast tokenizer"):
        encode(SlowTokenizer(), ["a"])
    with pytest.raises(TypeError, match="None"):
        encode(None, ["a"])


def test_transformers_fast_tokenizer_is_accepted(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=load_fixture_tokenizer("gpt2")
    )
    (tokens,) = encode(tokenizer, ["Hello"])
    assert tokens.input_ids.tolist() == [15496]


def test_prefix_space_on_every_pre_token_raises() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE({"Ġ": 0, "0": 1}, []))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel()]
    )
    with pytest.raises(ValueError, match="dummy-prefix space"):
        encode(tokenizer, ["00"])
