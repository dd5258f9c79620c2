"""LoRA students (peft): adapters train, merge on export, and the export reloads as plain HF."""

from __future__ import annotations

import pytest
import torch
from model_support import tiny_llama
from transformers import AutoModelForCausalLM

from ctd.models import export_pretrained
from ctd.models.lora import add_lora, has_lora, merged_copy

TARGETS = ["q_proj", "v_proj", "down_proj"]


def _train_adapter(model: torch.nn.Module, ids: torch.Tensor, steps: int = 3) -> None:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


@pytest.fixture
def adapted(byte_level_tokenizer):
    model = tiny_llama(len(byte_level_tokenizer), tied=False)
    original = {name: p.detach().clone() for name, p in model.named_parameters()}
    add_lora(model, r=4, alpha=8.0, target_modules=TARGETS, train_embeddings=False)
    return model, original


def test_only_adapters_train_and_a_fresh_adapter_changes_nothing(adapted) -> None:
    model, _ = adapted
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable
    assert all("lora_" in name for name in trainable)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable} == set(TARGETS)
    reference = tiny_llama(model.config.vocab_size, tied=False)
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits)  # B = 0


def test_trained_adapter_changes_output_merges_on_export_and_reloads(
    adapted, byte_level_tokenizer, tmp_path
) -> None:
    model, original = adapted
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    with torch.no_grad():
        before = model(ids).logits
    _train_adapter(model.train(), ids)
    model.eval()
    with torch.no_grad():
        after = model(ids).logits
    assert (after - before).abs().max() > 1e-3  # the adapter changed the output
    for name, parameter in model.named_parameters():  # the base weights did not move
        base_name = name.replace(".base_layer", "")
        if "lora_" not in name:
            torch.testing.assert_close(parameter, original[base_name], rtol=0, atol=0)

    layer = model.model.layers[0].self_attn.q_proj
    scale = 8.0 / 4
    expected = (
        layer.base_layer.weight
        + scale * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    )  # W + alpha / r * B A
    merged = merged_copy(model)
    assert has_lora(model)
    assert not has_lora(merged)
    torch.testing.assert_close(merged.model.layers[0].self_attn.q_proj.weight, expected)

    folder = export_pretrained(model, byte_level_tokenizer, tmp_path / "export")
    from safetensors.torch import load_file

    keys = load_file(folder / "model.safetensors").keys()
    assert not any("lora" in key or "base_layer" in key for key in keys)
    reloaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, after, rtol=1e-5, atol=1e-5)


def test_embeddings_train_in_full_by_default(byte_level_tokenizer) -> None:
    model = tiny_llama(len(byte_level_tokenizer), tied=True)
    add_lora(model, r=2, alpha=2.0, target_modules=["q_proj"])
    assert model.get_input_embeddings().weight.requires_grad
    assert not model.model.layers[0].mlp.up_proj.weight.requires_grad


def test_unknown_target_modules_are_named(byte_level_tokenizer) -> None:
    model = tiny_llama(len(byte_level_tokenizer), tied=True)
    with pytest.raises(ValueError, match=r"\['qkv_proj'\] match no module"):
        add_lora(model, r=2, alpha=2.0, target_modules=["q_proj", "qkv_proj"])
    with pytest.raises(ValueError, match="lora.r must be at least 1"):
        add_lora(model, r=0, alpha=2.0, target_modules=["q_proj"])
