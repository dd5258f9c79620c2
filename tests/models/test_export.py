"""export_pretrained: plain transformers reloads it with the same logits and generates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_support import tiny_llama
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from ctd.models import export_pretrained, fvt_init_embeddings, to_byte_level


@pytest.mark.parametrize("tied", [True, False])
def test_export_reload_same_logits(
    byte_level_tokenizer: PreTrainedTokenizerFast, tmp_path: Path, tied: bool
) -> None:
    byte_tokenizer = to_byte_level(byte_level_tokenizer)
    model = tiny_llama(len(byte_level_tokenizer), tied=tied)
    fvt_init_embeddings(model, byte_level_tokenizer, byte_tokenizer)
    out_dir = export_pretrained(model, byte_tokenizer, tmp_path / "export")
    assert (out_dir / "model.safetensors").is_file()
    assert not list(out_dir.glob("*.bin"))
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    ids = tokenizer("Grüße 😀", return_tensors="pt")["input_ids"]
    assert ids[0].tolist() == byte_tokenizer("Grüße 😀")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    assert (reloaded.lm_head.weight is reloaded.model.embed_tokens.weight) == tied
    generated = reloaded.generate(ids, max_new_tokens=4, do_sample=False)
    assert ids.shape[1] < generated.shape[1] <= ids.shape[1] + 4
    assert isinstance(tokenizer.decode(generated[0]), str)


def test_export_refuses_mismatch(
    byte_level_tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="rows"):
        export_pretrained(tiny_llama(50, tied=True), byte_level_tokenizer, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()
