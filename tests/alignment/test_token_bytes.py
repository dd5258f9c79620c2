import numpy as np
import pytest
from alignment_support import (
    FIXTURE_NAMES,
    load_fixture_tokenizer,
    load_shared_tokenizer,
    trained_tokenizer,
)

from ctd.alignment import token_bytes
from ctd.alignment.token_bytes import bytes_to_unicode


def test_bytes_to_unicode_is_a_bijection() -> None:
    table = bytes_to_unicode()
    assert len(table) == 256
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ"
    assert table[ord("\n")] == "Ċ"
    assert table[ord("A")] == "A"


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_special_tokens_are_flagged(name: str) -> None:
    tokenizer = load_fixture_tokenizer(name)
    table = token_bytes(tokenizer)
    assert table.vocab_size == tokenizer.get_vocab_size(with_added_tokens=True)
    for special in ("<|endoftext|>", "<s>"):
        index = tokenizer.token_to_id(special)
        if index is not None:
            assert table.is_special[index]
            assert table.bytes_of[index] == special.encode()


def test_sentencepiece_pieces() -> None:
    tokenizer = load_fixture_tokenizer("mistral-v3-spm")
    table = token_bytes(tokenizer)
    assert table.bytes_of[tokenizer.token_to_id("<0xE2>")] == b"\xe2"
    assert table.bytes_of[tokenizer.token_to_id("▁the")] == b" the"
    assert table.prepends_space
    assert table.normalizer is None
    assert table.starts_with_whitespace[tokenizer.token_to_id("▁the")]


def test_byte_level_pieces() -> None:
    tokenizer = load_fixture_tokenizer("gpt2")
    table = token_bytes(tokenizer)
    assert table.bytes_of[tokenizer.token_to_id("Ġthe")] == b" the"
    assert table.bytes_of[tokenizer.token_to_id("Ċ")] == b"\n"
    assert not table.prepends_space


def test_wordpiece_prefix_is_stripped() -> None:
    tokenizer = trained_tokenizer("wordpiece")
    table = token_bytes(tokenizer)
    pieces = [p for p in tokenizer.get_vocab() if p.startswith("##") and len(p) > 2]
    assert table.bytes_of[tokenizer.token_to_id(pieces[0])] == pieces[0][2:].encode()
    assert table.drops_whitespace
    assert table.normalizer == "BertNormalizer"


def test_cached_per_tokenizer_object() -> None:
    tokenizer = trained_tokenizer("byte_bpe")
    assert token_bytes(tokenizer) is token_bytes(tokenizer)
    assert token_bytes(tokenizer).blob.dtype == np.uint8


def test_qwen2_nfc_is_named() -> None:
    assert token_bytes(load_shared_tokenizer("qwen2")).normalizer == "NFC"
