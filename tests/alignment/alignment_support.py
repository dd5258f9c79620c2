"""Tokenizers for the alignment tests: small ones trained here, committed real fixtures, and the
real tokenizers in ../shared (skipped with a reason where that folder is absent)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "tokenizers"
SHARED = (REPO_ROOT / ".." / "shared").resolve()
SHARED_TOKENIZERS = SHARED / "assets" / "tokenizers"
FIXTURE_NAMES = ["gpt2", "mistral-v3-spm", "smollm2", "phi3"]
SHARED_NAMES = [
    "gpt2",
    "llama2",
    "llama3",
    "qwen2",
    "qwen2.5",
    "phi3",
    "gemma3",
    "smollm2",
    "mistral-v3-spm",
    "mistral-nemo-tekken",
    "gpt-neox-20b",
]
TRAIN_TEXT = [
    "The quick brown fox jumps over the lazy dog. Hello world, hello World!",
    "Grüße aus Köln: café, naïve, déjà vu. Ελληνικά και русский текст.",
    "中文文本和日本語のテキスト。 한국어 텍스트. مرحبا بالعالم",
    "  leading spaces\tand tabs\n\nand newlines  ",
    "emoji 🤗🦙 and 👩‍👩‍👧 family, numbers 12345 and 3.14159",
] * 20
_CACHE: dict[str, Tokenizer] = {}


def load_fixture_tokenizer(name: str) -> Tokenizer:
    """A committed real tokenizer (tests/fixtures/tokenizers/<name>/tokenizer.json.gz)."""
    if name not in _CACHE:
        text = gzip.decompress((FIXTURES / name / "tokenizer.json.gz").read_bytes()).decode()
        _CACHE[name] = Tokenizer.from_str(text)
    return _CACHE[name]


def load_shared_tokenizer(name: str) -> Tokenizer:
    """A real tokenizer from ../shared, or skip."""
    path = SHARED_TOKENIZERS / name / "tokenizer.json"
    if not path.exists():
        pytest.skip(f"{path} absent: ../shared (real tokenizers) is not beside the repository")
    key = f"shared:{name}"
    if key not in _CACHE:
        _CACHE[key] = Tokenizer.from_file(str(path))
    return _CACHE[key]


def _train_byte_bpe() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
    )
    tokenizer.train_from_iterator(TRAIN_TEXT, trainer)
    return tokenizer


def _train_byte_bpe_digits() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=330, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<s>"]
    )
    tokenizer.train_from_iterator(TRAIN_TEXT, trainer)
    return tokenizer


def _train_spm_bpe() -> Tokenizer:
    """SentencePiece-style BPE: dummy prefix, ▁, <0xNN> byte fallback, BOS template."""
    byte_tokens = [f"<0x{byte:02X}>" for byte in range(256)]
    tokenizer = Tokenizer(models.BPE(byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=340, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=60
    )
    tokenizer.train_from_iterator(TRAIN_TEXT, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
    )
    parsed = json.loads(tokenizer.to_str())  # byte-fallback pieces live in the model vocab
    vocab = parsed["model"]["vocab"]
    for piece in byte_tokens:
        vocab[piece] = len(vocab)
    return Tokenizer.from_str(json.dumps(parsed))


def _train_unigram() -> Tokenizer:
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=300, special_tokens=["<unk>"], unk_token="<unk>", initial_alphabet=[]
    )
    tokenizer.train_from_iterator(TRAIN_TEXT, trainer)
    return tokenizer


def _train_wordpiece() -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=["[UNK]", "[CLS]", "[SEP]"])
    tokenizer.train_from_iterator(TRAIN_TEXT, trainer)
    return tokenizer


def _byte_level_256() -> Tokenizer:
    """Our own byte-level tokenizer: 256 byte tokens, no merges."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {char: index for index, char in enumerate(sorted(alphabet))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


TRAINED = {
    "byte_bpe": _train_byte_bpe,
    "byte_bpe_digits": _train_byte_bpe_digits,
    "spm_bpe": _train_spm_bpe,
    "unigram": _train_unigram,
    "byte_level_256": _byte_level_256,
    "wordpiece": _train_wordpiece,
}
LOSSLESS_TRAINED = ["byte_bpe", "byte_bpe_digits", "spm_bpe", "byte_level_256"]


def trained_tokenizer(name: str) -> Tokenizer:
    """A small tokenizer trained on TRAIN_TEXT (cached)."""
    key = f"trained:{name}"
    if key not in _CACHE:
        _CACHE[key] = TRAINED[name]()
    return _CACHE[key]


def reference_texts(name: str = "ggml-vocab-llama-bpe.gguf.inp") -> list[str]:
    """llama.cpp's adversarial reference texts (skip without ../shared)."""
    path = SHARED_TOKENIZERS / "llamacpp_reference_cases" / name
    if not path.exists():
        pytest.skip(f"{path} absent: ../shared is not beside the repository")
    return path.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
