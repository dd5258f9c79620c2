"""Tiny random causal LMs saved with tiny trained tokenizers, and a small text corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Café au lait, naïve façade: ünïcödé text with emoji 🙂 and CJK 漢字.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n",
    "  Leading spaces, trailing spaces   \n\nand blank lines.",
    "In the beginning God created the heaven and the earth.",
    "Numbers 12345 and 3.14159 and dates like 2026-11-27.",
] * 4


def _train_tokenizer(kind: str, vocab_size: int, out_dir: Path):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    if kind == "byte_bpe":
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:  # whitespace-split byte-level BPE with a different merge budget
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False),
            ]
        )
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tokenizer.train_from_iterator(TEXTS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|pad|>",
    )
    fast.save_pretrained(out_dir)
    return fast


def _tiny_llama(vocab_size: int, out_dir: Path, seed: int, tokenizer) -> None:  # type: ignore[no-untyped-def]
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out_dir)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny Llamas with different trained tokenizers, plus text files."""
    root = tmp_path_factory.mktemp("tiny")
    paths = {"teacher": root / "teacher", "student": root / "student"}
    teacher_tokenizer = _train_tokenizer("byte_bpe", 400, paths["teacher"])
    student_tokenizer = _train_tokenizer("digits_bpe", 330, paths["student"])
    _tiny_llama(len(teacher_tokenizer), paths["teacher"], 0, teacher_tokenizer)
    _tiny_llama(len(student_tokenizer), paths["student"], 1, student_tokenizer)
    train = root / "train.txt"
    train.write_text("\n\n".join(TEXTS * 3))
    heldout = root / "heldout.txt"
    heldout.write_text("\n\n".join(TEXTS[:6]))
    paths["train"], paths["heldout"] = train, heldout
    return paths
