"""The fast paths (length proof of exact spelling, tiled chunking) agree with the full ones."""

import dataclasses
import importlib

import numpy as np
import pytest
from conftest import (
    load_fixture_tokenizer,
    load_shared_tokenizer,
    reference_texts,
    trained_tokenizer,
)
from tokenizers import Tokenizer, normalizers

from ctd.alignment import align_batch, encode_batch, token_bytes

align_module = importlib.import_module("ctd.alignment.align")  # `align` is also a function
encode_module = importlib.import_module("ctd.alignment.encode")


def _with_normalizer(name: str, normalizer: normalizers.Normalizer) -> Tokenizer:
    tokenizer = Tokenizer.from_str(trained_tokenizer(name).to_str())
    tokenizer.normalizer = normalizer
    return tokenizer


@pytest.mark.parametrize("name", ["gpt2", "smollm2"])
def test_byte_level_without_normalizer_takes_the_length_proof(name: str) -> None:
    assert token_bytes(load_fixture_tokenizer(name)).length_proves_exact


@pytest.mark.parametrize(("name", "proves"), [("llama3", True), ("gemma3", True), ("qwen2", False)])
def test_real_tokenizers_length_proof(name: str, proves: bool) -> None:
    table = token_bytes(load_shared_tokenizer(name))
    assert table.length_proves_exact is proves
    if name == "gemma3":  # byte fallback + Replace(" " -> "▁"); <unk> excluded by id
        assert table.unk_id == load_shared_tokenizer(name).token_to_id("<unk>")


@pytest.mark.parametrize(
    "normalizer",
    [
        normalizers.Lowercase(),
        normalizers.NFC(),
        normalizers.Sequence([normalizers.Replace("a", "bb"), normalizers.Replace("cc", "d")]),
    ],
)
def test_a_text_changing_normalizer_takes_the_full_check(normalizer: object) -> None:
    tokenizer = _with_normalizer("byte_bpe", normalizer)  # type: ignore[arg-type]
    assert not token_bytes(tokenizer).length_proves_exact


def test_same_length_substitution_is_never_silent() -> None:
    # "acc" -> "bbd": as many bytes, different ones; the length proof would accept it.
    tokenizer = _with_normalizer(
        "byte_bpe",
        normalizers.Sequence([normalizers.Replace("a", "bb"), normalizers.Replace("cc", "d")]),
    )
    with pytest.raises(ValueError, match="Replace"):
        encode_batch(tokenizer, ["acc xacc"], add_special_tokens=False)


def test_dummy_prefix_and_wordpiece_take_the_full_check() -> None:
    assert not token_bytes(load_fixture_tokenizer("phi3")).length_proves_exact  # prepends "▁"
    assert not token_bytes(trained_tokenizer("wordpiece")).length_proves_exact


@pytest.mark.parametrize(
    ("source", "name"),
    [("fixture", "gpt2"), ("fixture", "smollm2"), ("trained", "byte_level_256")]
    + [("shared", "llama3"), ("shared", "gemma3")],
)
def test_length_proof_gives_the_spans_of_the_full_check(
    source: str, name: str, monkeypatch
) -> None:
    loaders = {
        "fixture": load_fixture_tokenizer,
        "trained": trained_tokenizer,
        "shared": load_shared_tokenizer,
    }
    tokenizer = loaders[source](name)
    assert token_bytes(tokenizer).length_proves_exact
    texts = [*reference_texts()[:50], "", " ", "▁literal metaspace", "<0x41>"]
    fast = encode_batch(tokenizer, texts)
    table = dataclasses.replace(token_bytes(tokenizer), length_proves_exact=False)
    monkeypatch.setattr(encode_module, "token_bytes", lambda _: table)
    full = encode_batch(tokenizer, texts)
    for field in ("input_ids", "byte_starts", "byte_ends", "row_starts"):
        assert np.array_equal(getattr(fast, field), getattr(full, field)), field


@pytest.mark.parametrize("mode", ["unconstrained", "space"])
@pytest.mark.parametrize("pair", ["fixtures", "shared"])
def test_tiled_chunking_equals_the_general_path(mode: str, pair: str, monkeypatch) -> None:
    if pair == "fixtures":
        teacher_tok, student_tok = load_fixture_tokenizer("gpt2"), load_fixture_tokenizer("smollm2")
    else:
        teacher_tok, student_tok = load_shared_tokenizer("llama3"), load_shared_tokenizer("gemma3")
    texts = [*reference_texts()[:80], "", "a", " é 🤗"]
    teacher = encode_batch(teacher_tok, texts, add_special_tokens=False)
    student = encode_batch(student_tok, texts, add_special_tokens=False)
    assert align_module._tiles_text(teacher)
    assert align_module._tiles_text(student)
    tables = {"teacher_token_bytes": token_bytes(teacher_tok)}
    tables["student_token_bytes"] = token_bytes(student_tok)
    fast = align_batch(teacher, student, mode=mode, **tables)
    monkeypatch.setattr(align_module, "_tiles_text", lambda _: False)
    general = align_batch(teacher, student, mode=mode, **tables)
    for field in dataclasses.fields(general):
        assert np.array_equal(getattr(fast, field.name), getattr(general, field.name)), field.name


def test_specials_or_gaps_leave_the_tiled_path() -> None:
    tokenizer = load_fixture_tokenizer("gpt2")
    batch = encode_batch(tokenizer, ["hello world"], add_special_tokens=False)
    assert align_module._tiles_text(batch)
    gap = dataclasses.replace(
        batch, byte_starts=batch.byte_starts + np.eye(len(batch.input_ids), dtype=np.int64)[-1]
    )
    assert not align_module._tiles_text(gap)
    special = dataclasses.replace(batch, is_special=np.ones_like(batch.is_special))
    assert not align_module._tiles_text(special)
