"""expand_input_ids: longest original token ending at each byte, checked by brute force."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Tokenizer, models
from transformers import PreTrainedTokenizerFast

from ctd.models import to_byte_level
from ctd.models.expand import NO_TOKEN, byte_expansion, expand_input_ids


@pytest.fixture(scope="module")
def original() -> PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "bab": 4, "é": 5}
    backend = Tokenizer(models.BPE(vocab, [("a", "b"), ("b", "ab")], unk_token="<unk>"))
    backend.add_special_tokens([AddedToken("<unk>", normalized=False), AddedToken("<s>")])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>")


def _brute_force(data: bytes) -> list[int]:
    tokens = {"a": 1, "b": 2, "ab": 3, "bab": 4, "é": 5}
    result = []
    for end in range(1, len(data) + 1):
        matches = [
            (len(text.encode()), token_id)
            for text, token_id in tokens.items()
            if data[:end].endswith(text.encode())
        ]
        result.append(max(matches)[1] if matches else NO_TOKEN)
    return result


def test_hand_case(original: PreTrainedTokenizerFast) -> None:
    byte_tokenizer = to_byte_level(original)
    expansion = byte_expansion(original, byte_tokenizer)
    ids = torch.tensor([byte_tokenizer("<s>abab c", add_special_tokens=False)["input_ids"]])
    # original ids: <s> = 6; then a, ab, a ("aba", "ba" are no tokens), bab; space and c: none
    assert expand_input_ids(ids, expansion).tolist() == [[6, 1, 3, 1, 4, -1, -1]]
    after_special = torch.tensor([[ord("b"), 257, ord("a"), ord("b")]])
    assert expand_input_ids(after_special, expansion).tolist() == [[2, 6, 1, 3]]


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet="abé c", max_size=20))
def test_matches_brute_force(original: PreTrainedTokenizerFast, text: str) -> None:
    byte_tokenizer = to_byte_level(original)
    expansion = byte_expansion(original, byte_tokenizer)
    data = text.encode()
    ids = torch.tensor([list(data)], dtype=torch.long).reshape(1, len(data))
    assert expand_input_ids(ids, expansion).tolist() == [_brute_force(data)]
