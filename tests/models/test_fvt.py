"""FVT: hand-worked rows, tied/untied heads, byte-level targets, config ids."""

from __future__ import annotations

import pytest
import torch
from model_support import tiny_llama
from tokenizers import AddedToken, Tokenizer, models
from transformers import PreTrainedTokenizerFast

from ctd.models import fvt_init_embeddings, fvt_mapping, to_byte_level


def _wrap(backend: Tokenizer) -> PreTrainedTokenizerFast:
    backend.add_special_tokens([AddedToken("<unk>", normalized=False)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


@pytest.fixture
def hand_tokenizers() -> tuple[PreTrainedTokenizerFast, PreTrainedTokenizerFast]:
    old_vocab = {"<unk>": 0, "a": 1, "b": 2, "ab": 3}
    old = _wrap(Tokenizer(models.BPE(old_vocab, [("a", "b")], unk_token="<unk>")))
    new_vocab = {"<unk>": 0, "ab": 1, "abb": 2, "c": 3}
    new = _wrap(Tokenizer(models.WordLevel(new_vocab, unk_token="<unk>")))
    return old, new


@pytest.mark.parametrize("tied", [True, False])
def test_hand_worked_case(
    hand_tokenizers: tuple[PreTrainedTokenizerFast, PreTrainedTokenizerFast], tied: bool
) -> None:
    old, new = hand_tokenizers
    model = tiny_llama(4, tied=tied)
    with torch.no_grad():
        # rows <unk>, a, b, ab = -1, 1, 2, 4 (and 10x that in an untied head)
        model.model.embed_tokens.weight.copy_(torch.tensor([-1.0, 1.0, 2.0, 4.0])[:, None])
        if not tied:
            model.lm_head.weight.copy_(torch.tensor([-10.0, 10.0, 20.0, 40.0])[:, None])
    mapping = fvt_mapping(old, new)
    assert mapping.sources[:3] == [[0], [3], [3, 2]]
    assert mapping.counts == {"copied": 2, "averaged": 1, "random": 1}
    fvt_init_embeddings(model, old, new, mapping=mapping)
    embedding = model.model.embed_tokens.weight
    assert embedding.shape == (4, 32)
    torch.testing.assert_close(embedding[0], torch.full((32,), -1.0))
    torch.testing.assert_close(embedding[1], torch.full((32,), 4.0))  # "ab" copied
    torch.testing.assert_close(embedding[2], torch.full((32,), 3.0))  # "abb" = (4 + 2) / 2
    assert not torch.allclose(embedding[3], embedding[0])  # "c": random
    if tied:
        assert model.lm_head.weight is model.model.embed_tokens.weight
    else:
        assert model.lm_head.weight.data_ptr() != embedding.data_ptr()
        torch.testing.assert_close(model.lm_head.weight[1], torch.full((32,), 40.0))
        torch.testing.assert_close(model.lm_head.weight[2], torch.full((32,), 30.0))
    assert model.config.vocab_size == 4
    assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 4)


def test_random_rows_are_seeded(
    hand_tokenizers: tuple[PreTrainedTokenizerFast, PreTrainedTokenizerFast],
) -> None:
    old, new = hand_tokenizers
    rows = []
    for _ in range(2):
        model = fvt_init_embeddings(tiny_llama(4, tied=True), old, new, seed=3)
        rows.append(model.model.embed_tokens.weight[3].clone())
    torch.testing.assert_close(rows[0], rows[1])


@pytest.mark.parametrize("tied", [True, False])
def test_byte_level_bpe_to_bytes_copies_everything(
    byte_level_tokenizer: PreTrainedTokenizerFast, tied: bool
) -> None:
    old_model = tiny_llama(len(byte_level_tokenizer), tied=tied)
    old_input = old_model.model.embed_tokens.weight.detach().clone()
    old_output = old_model.lm_head.weight.detach().clone()
    byte_tokenizer = to_byte_level(byte_level_tokenizer)
    model = fvt_init_embeddings(old_model, byte_level_tokenizer, byte_tokenizer)
    mapping = fvt_mapping(byte_level_tokenizer, byte_tokenizer)
    assert mapping.counts == {"copied": 259, "averaged": 0, "random": 0}
    for new_token in ["A", "Ġ", "Ċ", "<|im_end|>"]:
        old_id = byte_level_tokenizer.convert_tokens_to_ids(new_token)
        new_id = byte_tokenizer.convert_tokens_to_ids(new_token)
        torch.testing.assert_close(model.model.embed_tokens.weight[new_id], old_input[old_id])
        torch.testing.assert_close(model.lm_head.weight[new_id], old_output[old_id])
    assert model.config.vocab_size == 259
    assert (model.config.bos_token_id, model.config.eos_token_id) == (257, 258)
    assert model.generation_config.eos_token_id == 258


def test_sentencepiece_to_bytes_uses_byte_fallback(
    sentencepiece_tokenizer: PreTrainedTokenizerFast,
) -> None:
    byte_tokenizer = to_byte_level(sentencepiece_tokenizer)
    mapping = fvt_mapping(sentencepiece_tokenizer, byte_tokenizer)
    vocab = sentencepiece_tokenizer.get_vocab()
    assert mapping.sources[0x80] == [vocab["<0x80>"]]  # not valid UTF-8 alone
    assert mapping.sources[ord("a")] == [vocab["a"]]  # the regular token wins over <0x61>
    assert mapping.sources[ord(" ")] == [vocab["\u2581"]]
    assert mapping.sources[257] == [vocab["<s>"]]
    assert mapping.counts == {"copied": 259, "averaged": 0, "random": 0}


def test_averaged_pieces_spell_the_new_token(
    byte_level_tokenizer: PreTrainedTokenizerFast, sentencepiece_tokenizer: PreTrainedTokenizerFast
) -> None:
    mapping = fvt_mapping(byte_level_tokenizer, sentencepiece_tokenizer)
    assert mapping.counts["averaged"] > 50
    checked = 0
    for new_id, (sources, method) in enumerate(zip(mapping.sources, mapping.methods, strict=True)):
        token = sentencepiece_tokenizer.convert_ids_to_tokens(new_id)
        if method != "averaged" or token.startswith("<0x"):
            continue
        assert len(sources) > 1
        assert byte_level_tokenizer.decode(sources) == token.replace("\u2581", " ")
        checked += 1
    assert checked == mapping.counts["averaged"]


def test_old_tokenizer_must_fit_the_model(
    byte_level_tokenizer: PreTrainedTokenizerFast,
) -> None:
    model = tiny_llama(100, tied=True)
    with pytest.raises(ValueError, match="100 rows"):
        fvt_init_embeddings(model, byte_level_tokenizer, to_byte_level(byte_level_tokenizer))
