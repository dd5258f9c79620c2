"""load_causal_lm / load_tokenizer / check_model_tokenizer_match, and their errors."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch
from model_support import tiny_llama
from transformers import ByT5Tokenizer, PreTrainedTokenizerFast

from ctd.models import (
    check_model_tokenizer_match,
    load_causal_lm,
    load_tokenizer,
    to_byte_level,
)
from ctd.models.loading import to_plain_model


@pytest.fixture(scope="module")
def saved_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, byte_level_tokenizer: PreTrainedTokenizerFast
) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    tiny_llama(len(byte_level_tokenizer), tied=False).save_pretrained(folder)
    byte_level_tokenizer.save_pretrained(folder)
    return folder


def test_load_from_folder(saved_checkpoint: Path) -> None:
    model = load_causal_lm(str(saved_checkpoint), local_files_only=True)
    tokenizer = load_tokenizer(str(saved_checkpoint), local_files_only=True)
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    check_model_tokenizer_match(model, tokenizer)
    bf16 = load_causal_lm(str(saved_checkpoint), dtype=torch.bfloat16)
    assert next(bf16.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("loader", [load_causal_lm, load_tokenizer])
def test_missing_paths(loader: object, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        loader(str(missing))  # type: ignore[operator]
    with pytest.raises(FileNotFoundError, match=r"missing\.gguf"):
        loader(str(tmp_path), gguf_file="missing.gguf")  # type: ignore[operator]
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        loader(str(tmp_path))  # type: ignore[operator]
    with pytest.raises(FileNotFoundError, match="gone.gguf"):
        loader("./models/gone.gguf")  # type: ignore[operator]


def test_slow_tokenizer_is_rejected(tmp_path: Path) -> None:
    ByT5Tokenizer().save_pretrained(tmp_path)
    with pytest.raises(TypeError, match="fast"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(TypeError, match="fast"):
        check_model_tokenizer_match(tiny_llama(400, tied=True), ByT5Tokenizer())


def test_gguf_without_gguf_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "gguf" else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    for loader in (load_causal_lm, load_tokenizer):
        with pytest.raises(ImportError, match=r'pip install "ctd-distill\[gguf\]"'):
            loader(str(tmp_path / "model.gguf"))
        with pytest.raises(ImportError, match="gguf"):
            loader(str(tmp_path), gguf_file="model.gguf")


def test_mismatch_names_both_sizes(byte_level_tokenizer: PreTrainedTokenizerFast) -> None:
    size = len(byte_level_tokenizer)
    with pytest.raises(ValueError, match=rf"({size} ids).*\b100 rows"):
        check_model_tokenizer_match(tiny_llama(100, tied=True), byte_level_tokenizer)
    byte_tokenizer = to_byte_level(byte_level_tokenizer)
    with pytest.raises(ValueError, match=r"5000 rows.*259 ids"):
        check_model_tokenizer_match(tiny_llama(5000, tied=True), byte_tokenizer)
    check_model_tokenizer_match(tiny_llama(size + 64, tied=True), byte_level_tokenizer)


def test_plain_model_from_quantized_config() -> None:
    model = tiny_llama(300, tied=True)
    model.config.quantization_config = {"quant_method": "gguf"}
    plain = to_plain_model(model)
    assert getattr(plain.config, "quantization_config", None) is None
    ids = torch.tensor([[1, 5, 7]])
    torch.testing.assert_close(plain(ids).logits, model(ids).logits)
    assert plain.lm_head.weight is plain.model.embed_tokens.weight
