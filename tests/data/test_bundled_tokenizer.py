"""The bundled GPT-2 tokenizer: small, licensed, unpacked once, and GPT-2's real token ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from ctd.data import BUNDLED_TOKENIZERS, bundled_tokenizer_dir

# Token ids of the original GPT-2 tokenizer (openai/gpt-2 `encoder.json` + `vocab.bpe`), as
# every GPT-2 tutorial prints them: "Hello" 15496, " world" 995, "," 11, "!" 0, " the" 262,
# "\n" 198, <|endoftext|> 50256.
KNOWN_IDS = {
    "Hello world": [15496, 995],
    "Hello, world!": [15496, 11, 995, 0],
    " the\n": [262, 198],
}


def test_bundled_gpt2_gives_gpt2_token_ids(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(bundled_tokenizer_dir("gpt2", tmp_path))
    assert len(tokenizer) == 50257
    assert tokenizer.eos_token == tokenizer.bos_token == "<|endoftext|>"
    assert tokenizer.eos_token_id == 50256
    for text, ids in KNOWN_IDS.items():
        assert tokenizer(text, add_special_tokens=False).input_ids == ids, text
    text = "Grüße aus München! 2024 🙂\tdone"
    assert tokenizer.decode(tokenizer(text).input_ids) == text  # byte-level: lossless


def test_unpacked_once_into_the_cache(tmp_path: Path) -> None:
    (tmp_path / "tokenizers" / "gpt2.partial-1").mkdir(parents=True)  # an interrupted call
    folder = bundled_tokenizer_dir("gpt2", tmp_path)
    assert folder == tmp_path / "tokenizers" / "gpt2"
    assert sorted(p.name for p in folder.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    written = (folder / "tokenizer.json").stat().st_mtime_ns
    assert bundled_tokenizer_dir("gpt2", tmp_path) == folder
    assert (folder / "tokenizer.json").stat().st_mtime_ns == written


def test_bundled_files_are_small_and_licensed() -> None:
    assert BUNDLED_TOKENIZERS == ("gpt2",)
    source = Path(__file__).parents[2] / "ctd" / "data" / "tokenizers"
    assert (source / "gpt2" / "tokenizer.json.gz").stat().st_size < 1_500_000
    assert "Copyright (c) 2019 OpenAI" in (source / "gpt2" / "LICENSE.txt").read_text()
    sources = (source / "SOURCES.md").read_text(encoding="utf-8")
    assert "Modified MIT License" in sources
    assert "llama.cpp" in sources


def test_unknown_bundled_tokenizer_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no bundled tokenizer 'gpt3'; bundled: gpt2"):
        bundled_tokenizer_dir("gpt3", tmp_path)
