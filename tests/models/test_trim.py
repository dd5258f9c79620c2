"""Drafters from a target: the trimmed copy is the target's first k blocks, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from model_support import tiny_llama
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from ctd.cli import main as ctd_main
from ctd.models.trim import fresh_drafter, trimmed_drafter


def _llama(tie: bool) -> LlamaForCausalLM:
    return tiny_llama(96, tied=tie, num_layers=4)


def _reference_state(target: LlamaForCausalLM, k: int) -> dict[str, torch.Tensor]:
    """The keys a k-block Llama has, read by name from the target (hand-written, no helper)."""
    keep = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for index in range(k):
        keep |= {key for key in target.state_dict() if key.startswith(f"model.layers.{index}.")}
    return {key: value for key, value in target.state_dict().items() if key in keep}


@pytest.mark.parametrize("tie", [True, False])
def test_trimmed_weights_are_the_targets_first_blocks_bit_for_bit(tie: bool) -> None:
    target = _llama(tie)
    drafter = trimmed_drafter(target, 2)
    assert drafter.config.num_hidden_layers == 2
    assert len(drafter.model.layers) == 2
    expected = _reference_state(target, 2)
    state = drafter.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    tied = drafter.lm_head.weight is drafter.model.embed_tokens.weight
    assert tied == tie
    assert drafter.lm_head.weight.data_ptr() != target.lm_head.weight.data_ptr()  # a copy


def test_trimmed_drafter_computes_what_the_targets_first_blocks_compute() -> None:
    """Independent reference: run the target's embeddings, first k blocks, norm, head by hand."""
    target = _llama(tie=True)
    drafter = trimmed_drafter(target, 3)
    ids = torch.randint(0, 96, (2, 7))
    with torch.no_grad():
        hidden = target.model.embed_tokens(ids)
        positions = torch.arange(7).unsqueeze(0).expand(2, -1)
        rotary = target.model.rotary_emb(hidden, positions)
        causal = torch.full((7, 7), float("-inf")).triu(1)[None, None]
        for block in target.model.layers[:3]:
            hidden = block(hidden, attention_mask=causal, position_embeddings=rotary)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        expected = target.lm_head(target.model.norm(hidden))
        actual = drafter(ids).logits
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_trim_rejects_a_layer_count_out_of_range() -> None:
    target = _llama(tie=True)
    for bad in (0, 5):
        with pytest.raises(ValueError, match=r"--layers must be in \[1, 4\]"):
            trimmed_drafter(target, bad)


def test_fresh_drafter_is_small_random_and_on_the_targets_vocabulary() -> None:
    target = _llama(tie=True)
    drafter = fresh_drafter(target, num_layers=1, hidden_size=16, num_attention_heads=2)
    assert drafter.config.vocab_size == target.config.vocab_size
    assert drafter.model.embed_tokens.weight.shape == (96, 16)
    assert drafter.config.num_key_value_heads == 2
    assert drafter.lm_head.weight is drafter.model.embed_tokens.weight
    with pytest.raises(ValueError, match="not divisible"):
        fresh_drafter(target, num_layers=1, hidden_size=18, num_attention_heads=4)


def _save_target(tokenizer, root: Path, tie: bool) -> Path:  # type: ignore[no-untyped-def]
    target = _llama(tie)
    target.resize_token_embeddings(len(tokenizer))
    path = root / "target"
    target.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("tie", [True, False])
def test_make_drafter_saves_a_folder_plain_transformers_reloads(
    byte_level_tokenizer, tmp_path: Path, capsys: pytest.CaptureFixture[str], tie: bool
) -> None:
    target_dir = _save_target(byte_level_tokenizer, tmp_path, tie)
    out = tmp_path / "drafter"
    code = ctd_main(
        [
            "make-drafter",
            "--target",
            str(target_dir),
            "--layers",
            "1",
            "--output",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["layers"] == 1
    assert report["target_layers"] == 4
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    target = AutoModelForCausalLM.from_pretrained(target_dir)
    expected = _reference_state(target, 1)
    for key, value in expected.items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    assert (reloaded.lm_head.weight is reloaded.model.embed_tokens.weight) == tie
    assert AutoTokenizer.from_pretrained(out).get_vocab() == byte_level_tokenizer.get_vocab()


def test_make_drafter_bad_input_is_one_line_and_exit_2(
    byte_level_tokenizer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target_dir = _save_target(byte_level_tokenizer, tmp_path, True)
    out = str(tmp_path / "d")
    capsys.readouterr()
    cases = [
        (["--layers", "9"], "--layers must be in [1, 4]"),
        (["--layers", "1", "--hidden-size", "16"], "need --fresh"),
    ]
    for extra, message in cases:
        code = ctd_main(["make-drafter", "--target", str(target_dir), "--output", out, *extra])
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert code == 2
        assert last.startswith("ctd make-drafter: error: ")
        assert message in last
        assert "Traceback" not in last
