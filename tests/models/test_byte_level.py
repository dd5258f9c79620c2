"""to_byte_level: exact round trip, byte ids, kept specials, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer
from transformers import AutoTokenizer, ByT5Tokenizer, PreTrainedTokenizerFast

from ctd.models import to_byte_level

SHARED_TOKENIZERS = Path(__file__).parents[2] / ".." / "shared" / "assets" / "tokenizers"
EDGE_TEXTS = ["", " ", "  lead and trail  ", "\x00\x01\x7f\r\n\t", "😀👩‍👩‍👧 世界 é", "<|im_end|>x"]


@pytest.fixture(scope="module")
def byte_tokenizer(byte_level_tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    return to_byte_level(byte_level_tokenizer)


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_round_trip_any_text(byte_tokenizer: PreTrainedTokenizerFast, text: str) -> None:
    ids = byte_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == list(text.encode("utf-8"))
    assert byte_tokenizer.decode(ids) == text


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_round_trip_edge_cases(byte_tokenizer: PreTrainedTokenizerFast, text: str) -> None:
    assert byte_tokenizer.decode(byte_tokenizer(text)["input_ids"]) == text


def test_byte_ids_and_specials(
    byte_level_tokenizer: PreTrainedTokenizerFast, byte_tokenizer: PreTrainedTokenizerFast
) -> None:
    assert byte_tokenizer.convert_ids_to_tokens([32, 65, 10]) == ["Ġ", "A", "Ċ"]
    assert len(byte_tokenizer) == 256 + 3
    assert byte_tokenizer.convert_ids_to_tokens([256, 257, 258]) == [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
    ]
    for role in ("bos", "eos", "pad", "unk"):
        assert getattr(byte_tokenizer, f"{role}_token") == getattr(
            byte_level_tokenizer, f"{role}_token"
        )
    assert byte_tokenizer.chat_template == byte_level_tokenizer.chat_template
    assert byte_tokenizer("a<|im_end|>")["input_ids"] == [97, 258]
    assert byte_tokenizer.decode([97, 258], skip_special_tokens=True) == "a"


def test_chat_template_renders(byte_tokenizer: PreTrainedTokenizerFast) -> None:
    text = byte_tokenizer.apply_chat_template([{"role": "user", "content": "hé"}], tokenize=False)
    ids = byte_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == 257
    assert ids[-2:] == [258, 10]
    assert byte_tokenizer.decode(ids) == text


def test_keeps_added_bos(sentencepiece_tokenizer: PreTrainedTokenizerFast) -> None:
    byte_tokenizer = to_byte_level(sentencepiece_tokenizer)
    assert byte_tokenizer.convert_ids_to_tokens([256, 257, 258]) == ["<unk>", "<s>", "</s>"]
    assert byte_tokenizer("hi")["input_ids"] == [257, 104, 105]
    assert byte_tokenizer("hi", add_special_tokens=False)["input_ids"] == [104, 105]


def test_save_and_reload(byte_tokenizer: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    byte_tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    plain = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    text = " Grüße 😀\n<|im_start|>"
    assert reloaded(text)["input_ids"] == byte_tokenizer(text)["input_ids"]
    assert plain.encode(text).ids == byte_tokenizer(text)["input_ids"]
    assert reloaded.decode(reloaded(text)["input_ids"]) == text
    assert reloaded.chat_template == byte_tokenizer.chat_template
    assert reloaded.eos_token == "<|im_end|>"


def test_rejects_slow_tokenizer() -> None:
    with pytest.raises(TypeError, match="fast"):
        to_byte_level(ByT5Tokenizer())


@pytest.mark.skipif(not SHARED_TOKENIZERS.is_dir(), reason="needs ../shared/assets/tokenizers")
@pytest.mark.parametrize("name", ["llama2", "llama3", "qwen2.5", "smollm2"])
def test_real_tokenizers(name: str) -> None:
    original = AutoTokenizer.from_pretrained(SHARED_TOKENIZERS / name)
    byte_tokenizer = to_byte_level(original)
    text = "  Héllo 😀 世界\n\t123  "
    assert (
        byte_tokenizer.decode(byte_tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    )
    original_specials = (
        original(text)["input_ids"][:1] != original(text, add_special_tokens=False)["input_ids"][:1]
    )
    with_specials = byte_tokenizer(text)["input_ids"]
    assert (with_specials[0] >= 256) == original_specials
    assert byte_tokenizer.chat_template == original.chat_template
