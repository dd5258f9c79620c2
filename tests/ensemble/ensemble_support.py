"""Tiny tokenizers and random causal LMs for the ensemble tests (importable by name)."""

from __future__ import annotations

import gzip
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

TEXTS = ["the cat sat on the mat", "a hat, a cat, that mat", "then the rat ran at the cat"]


def tiny_bpe(vocab_size: int = 280, texts: Sequence[str] = TEXTS) -> PreTrainedTokenizerFast:
    """A byte-level BPE (256 bytes + merges) with <bos> and <eos>; many ways to spell a word."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts) * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>")


def tiny_llama(vocab_size: int, *, seed: int = 0, width: int = 32) -> LlamaForCausalLM:
    """A 2-layer Llama in float64 with hidden size `width` (exact comparisons)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    model = LlamaForCausalLM(config).double().eval()
    with torch.no_grad():  # sharper distributions than the default init, so tests are not flat
        model.lm_head.weight.mul_(30.0)
    return model


_SPELLED: dict[int, dict[int, bytes]] = {}


def byte_spelling_ids(tokenizer: PreTrainedTokenizerFast) -> dict[int, bytes]:
    """id -> bytes of every non-special token, read from the decoder (not from token_bytes).

    Each token is decoded after an anchor token ("a"), so a decoder that strips the text's
    leading space (SentencePiece) keeps the token's own.
    """
    if id(tokenizer) in _SPELLED:
        return _SPELLED[id(tokenizer)]
    specials = set(tokenizer.all_special_ids) | {tokenizer.unk_token_id}
    specials |= {index for index, added in tokenizer.added_tokens_decoder.items() if added.special}
    decoder = tokenizer.backend_tokenizer.decoder
    anchor = tokenizer.convert_ids_to_tokens(tokenizer("a", add_special_tokens=False).input_ids)
    head = decoder.decode(anchor)
    spelled = {}
    for index in range(len(tokenizer)):
        if index in specials:
            continue
        token = tokenizer.convert_ids_to_tokens(index)
        text = decoder.decode([*anchor, token])
        assert text.startswith(head), (head, text)
        spelled[index] = text[len(head) :].encode("utf-8")
    _SPELLED[id(tokenizer)] = spelled
    return spelled


def tokenizations(data: bytes, spelled: dict[int, bytes]) -> list[tuple[int, ...]]:
    """Every token sequence whose bytes are exactly `data` (brute force over every split)."""
    by_bytes: dict[bytes, list[int]] = {}
    for index, piece in spelled.items():
        by_bytes.setdefault(piece, []).append(index)
    if not data:
        return [()]
    found = []
    for end in range(1, len(data) + 1):
        for index in by_bytes.get(data[:end], []):
            found += [(index, *rest) for rest in tokenizations(data[end:], spelled)]
    return found


def restricted_logprobs(
    model: LlamaForCausalLM, context: list[int], ids: Sequence[int], allowed: list[int]
) -> torch.Tensor:
    """log q(. | context + ids[:t]) over `allowed` at every t = 0..len(ids), one forward.

    Shapes: returns (len(ids) + 1, len(allowed)) float64.
    """
    full = torch.tensor([[*context, *ids]])
    with torch.no_grad():
        logits = model(input_ids=full).logits[0, len(context) - 1 :].double()
    return torch.log_softmax(logits[:, allowed], dim=-1)


def brute_force_logprob(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    data: bytes,
    *,
    context: list[int],
    with_eos: bool,
) -> float:
    """log sum over tokenizations of data (ending with EOS), or over its covers (prefix prob)."""
    spelled = byte_spelling_ids(tokenizer)
    allowed = [*spelled, tokenizer.eos_token_id]
    column = {index: i for i, index in enumerate(allowed)}
    terms = []
    if with_eos:
        for ids in tokenizations(data, spelled):
            table = restricted_logprobs(model, context, ids, allowed)
            steps = [table[t, column[index]] for t, index in enumerate(ids)]
            terms.append(float(sum(steps) + table[len(ids), column[tokenizer.eos_token_id]]))
        return float(torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0))
    for cut in range(len(data)):  # covers: tokens spelling data[:cut], then one reaching the end
        for ids in tokenizations(data[:cut], spelled):
            table = restricted_logprobs(model, context, ids, allowed)
            head = float(sum(table[t, column[index]] for t, index in enumerate(ids)))
            rest = data[cut:]
            for index, piece in spelled.items():
                if piece.startswith(rest) and len(piece) >= len(rest):
                    terms.append(head + float(table[len(ids), column[index]]))
    return (
        float(torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0)) if terms else -math.inf
    )


def fixture_tokenizer(name: str, *, bos: str, eos: str) -> PreTrainedTokenizerFast:
    """A committed real tokenizer (tests/fixtures/tokenizers/<name>) with its BOS and EOS."""
    path = Path(__file__).parents[1] / "fixtures" / "tokenizers" / name / "tokenizer.json.gz"
    backend = Tokenizer.from_str(gzip.decompress(path.read_bytes()).decode())
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos)
