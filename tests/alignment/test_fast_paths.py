"""The fast paths (length proof of exact spelling, tiled chunking) agree with the full ones."""

import dataclasses
import importlib
from collections.abc import Sequence

import numpy as np
import pytest
from alignment_support import (
    load_fixture_tokenizer,
    load_shared_tokenizer,
    reference_texts,
    trained_tokenizer,
)
from tokenizers import Tokenizer, normalizers, processors

from ctd.alignment import (
    BatchAlignment,
    TokenBytes,
    TokenizedBatch,
    TokenizedText,
    align_batch,
    encode_batch,
    token_bytes,
)

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


def _assert_fast_equals_general(
    teacher: TokenizedBatch,
    student: TokenizedBatch,
    tables: dict[str, TokenBytes],
    monkeypatch: pytest.MonkeyPatch,
    **options: object,
) -> BatchAlignment:
    """Both sides take the template fast path, and it gives what the general path gives."""
    assert align_module.template_layout(teacher) is not None
    assert align_module.template_layout(student) is not None
    results = []
    tiled = align_module.tiled_alignment
    with monkeypatch.context() as patch:
        patch.setattr(align_module, "tiled_alignment", lambda *a: results.append(tiled(*a)))
        align_batch(teacher, student, **tables, **options)  # type: ignore[arg-type]
    assert len(results) == 1
    assert results[0] is not None  # the fast path decided, no fallback
    fast = align_batch(teacher, student, **tables, **options)  # type: ignore[arg-type]
    with monkeypatch.context() as patch:
        patch.setattr(align_module, "template_layout", lambda _: None)
        general = align_batch(teacher, student, **tables, **options)  # type: ignore[arg-type]
    for field in dataclasses.fields(general):
        assert np.array_equal(getattr(fast, field.name), getattr(general, field.name)), field.name
    return fast


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
    tables = {"teacher_token_bytes": token_bytes(teacher_tok)}
    tables["student_token_bytes"] = token_bytes(student_tok)
    _assert_fast_equals_general(teacher, student, tables, monkeypatch, mode=mode)


TILING_TOKENIZERS = [("fixture", "gpt2"), ("fixture", "smollm2")]
TILING_TOKENIZERS += [("trained", "byte_bpe"), ("trained", "byte_bpe_digits")]
TILING_TOKENIZERS += [("trained", "byte_level_256")]
SPECIAL_ID = 0  # any id: a special's id only matters to the modes, which see is_special first


def _tiling_tokenizer(source: str, name: str) -> Tokenizer:
    return load_fixture_tokenizer(name) if source == "fixture" else trained_tokenizer(name)


def _with_specials(
    batch: TokenizedBatch, leading: Sequence[int], trailing: Sequence[int]
) -> TokenizedBatch:
    """`batch` with `leading[r]` zero-width specials at byte 0 and `trailing[r]` at the end."""
    rows = []
    for row, num_leading, num_trailing in zip(batch.rows(), leading, trailing, strict=True):
        end = row.num_text_bytes
        count = num_leading + len(row) + num_trailing
        rows.append(
            TokenizedText(
                input_ids=np.concatenate(
                    [[SPECIAL_ID] * num_leading, row.input_ids, [SPECIAL_ID] * num_trailing]
                ).astype(np.int64),
                byte_starts=np.concatenate(
                    [[0] * num_leading, row.byte_starts, [end] * num_trailing]
                ).astype(np.int64),
                byte_ends=np.concatenate(
                    [[0] * num_leading, row.byte_ends, [end] * num_trailing]
                ).astype(np.int64),
                is_special=(np.arange(count) < num_leading)
                | (np.arange(count) >= count - num_trailing),
                num_text_bytes=end,
            )
        )
    return TokenizedBatch.from_rows(rows)


def _random_pair(seed: int) -> tuple[Tokenizer, Tokenizer, list[str]]:
    rng = np.random.default_rng(seed)
    first, second = rng.choice(len(TILING_TOKENIZERS), size=2, replace=False)
    pool = reference_texts()
    texts = [pool[int(k)] for k in rng.choice(len(pool), size=30, replace=False)]
    texts += ["", " ", "a", " é 🤗!"]
    return (
        _tiling_tokenizer(*TILING_TOKENIZERS[int(first)]),
        _tiling_tokenizer(*TILING_TOKENIZERS[int(second)]),
        texts,
    )


TEMPLATES = {"none": (0, 0), "bos": (1, 0), "eos": (0, 1), "bos+eos": (1, 1)}


@pytest.mark.parametrize("pair_specials", [True, False])
@pytest.mark.parametrize("student_template", list(TEMPLATES))
@pytest.mark.parametrize("teacher_template", list(TEMPLATES))
def test_template_fast_path_equals_the_general_path(
    teacher_template: str, student_template: str, pair_specials: bool, monkeypatch
) -> None:
    seed = list(TEMPLATES).index(teacher_template) * 4 + list(TEMPLATES).index(student_template)
    teacher_tok, student_tok, texts = _random_pair(seed)
    num_rows = len(texts)
    batches = []
    for tokenizer, template in ((teacher_tok, teacher_template), (student_tok, student_template)):
        plain = encode_batch(tokenizer, texts, add_special_tokens=False)
        leading, trailing = TEMPLATES[template]
        batches.append(_with_specials(plain, [leading] * num_rows, [trailing] * num_rows))
    tables = {"teacher_token_bytes": token_bytes(teacher_tok)}
    tables["student_token_bytes"] = token_bytes(student_tok)
    for mode in ("unconstrained", "space"):
        fast = _assert_fast_equals_general(
            *batches, tables, monkeypatch, mode=mode, pair_specials=pair_specials
        )
        for batch, chunk_index in zip(
            batches, (fast.teacher_chunk_index, fast.student_chunk_index), strict=True
        ):
            special_chunks = chunk_index[batch.is_special]
            if not pair_specials:  # one-sided or not paired: in no chunk
                assert np.all(special_chunks == -1)
            elif teacher_template == student_template:  # every special is paired
                assert np.all(special_chunks >= 0)


@pytest.mark.parametrize("pair_specials", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_random_special_counts_per_row_equal_the_general_path(
    seed: int, pair_specials: bool, monkeypatch
) -> None:
    teacher_tok, student_tok, texts = _random_pair(100 + seed)
    rng = np.random.default_rng(seed)
    batches = []
    for tokenizer in (teacher_tok, student_tok):
        plain = encode_batch(tokenizer, texts, add_special_tokens=False)
        leading, trailing = rng.integers(0, 3, size=(2, len(texts)))
        batches.append(_with_specials(plain, leading.tolist(), trailing.tolist()))
    tables = {"teacher_token_bytes": token_bytes(teacher_tok)}
    tables["student_token_bytes"] = token_bytes(student_tok)
    for mode in ("unconstrained", "space"):
        _assert_fast_equals_general(
            *batches, tables, monkeypatch, mode=mode, pair_specials=pair_specials
        )


@pytest.mark.parametrize("pair_specials", [True, False])
@pytest.mark.parametrize("mode", ["unconstrained", "space"])
def test_llama3_gemma3_templates_take_the_fast_path(
    mode: str, pair_specials: bool, monkeypatch
) -> None:
    teacher_tok, student_tok = load_shared_tokenizer("llama3"), load_shared_tokenizer("gemma3")
    texts = [*reference_texts()[:80], "", "a", " é 🤗"]
    teacher = encode_batch(teacher_tok, texts)  # <|begin_of_text|> ...
    student = encode_batch(student_tok, texts)  # <bos> ...
    assert teacher.is_special.sum() == student.is_special.sum() == len(texts)
    tables = {"teacher_token_bytes": token_bytes(teacher_tok)}
    tables["student_token_bytes"] = token_bytes(student_tok)
    fast = _assert_fast_equals_general(
        teacher, student, tables, monkeypatch, mode=mode, pair_specials=pair_specials
    )
    bos_chunk = fast.teacher_chunk_index[teacher.row_starts[:-1]]
    assert np.all(bos_chunk == (0 if pair_specials else -1))


def test_specials_inside_the_text_or_gaps_leave_the_fast_path() -> None:
    tokenizer = load_fixture_tokenizer("gpt2")
    batch = encode_batch(tokenizer, ["hello world"], add_special_tokens=False)
    assert align_module.template_layout(batch) is not None
    gap = dataclasses.replace(
        batch, byte_starts=batch.byte_starts + np.eye(len(batch.input_ids), dtype=np.int64)[-1]
    )
    assert align_module.template_layout(gap) is None
    in_text = dataclasses.replace(batch, is_special=np.ones_like(batch.is_special))
    assert align_module.template_layout(in_text) is None  # specials with bytes
    templated = _with_specials(batch, [1], [1])
    assert align_module.template_layout(templated) is not None
    middle = int(batch.byte_ends[0])  # a zero-width special between the first two tokens
    row = batch.row(0)
    inserted = TokenizedText(
        input_ids=np.insert(row.input_ids, 1, SPECIAL_ID),
        byte_starts=np.insert(row.byte_starts, 1, middle),
        byte_ends=np.insert(row.byte_ends, 1, middle),
        is_special=np.insert(row.is_special, 1, True),
        num_text_bytes=row.num_text_bytes,
    )
    assert align_module.template_layout(TokenizedBatch.from_rows([inserted])) is None


def _templated(name: str, single: str, special: str) -> Tokenizer:
    tokenizer = Tokenizer.from_str(trained_tokenizer(name).to_str())
    tokenizer.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(special, tokenizer.token_to_id(special))]
    )
    return tokenizer


@pytest.mark.parametrize("pair_specials", [True, False])
def test_bos_eos_and_eos_only_templates_take_the_fast_path(
    pair_specials: bool, monkeypatch
) -> None:
    teacher_tok = _templated("byte_bpe", "<|endoftext|> $A <|endoftext|>", "<|endoftext|>")
    student_tok = _templated("byte_bpe_digits", "$A <s>", "<s>")
    texts = [*reference_texts()[:40], "", "a", " é 🤗"]
    teacher, student = encode_batch(teacher_tok, texts), encode_batch(student_tok, texts)
    for tokenizer, batch in ((teacher_tok, teacher), (student_tok, student)):
        expected = [encoding.ids for encoding in tokenizer.encode_batch(texts)]
        assert [row.input_ids.tolist() for row in batch.rows()] == expected
    last = student.row_starts[1:] - 1  # the student's EOS, at the end of each text
    assert np.array_equal(student.byte_starts[last], student.num_text_bytes)
    assert np.all(student.is_special[last])
    tables = {"teacher_token_bytes": token_bytes(teacher_tok)}
    tables["student_token_bytes"] = token_bytes(student_tok)
    fast = _assert_fast_equals_general(
        teacher, student, tables, monkeypatch, pair_specials=pair_specials
    )
    eos_chunk = fast.student_chunk_index[last]
    nonempty = student.num_text_bytes > 0  # in an empty text BOS and EOS share position 0
    assert np.all((eos_chunk[nonempty] >= 0) == pair_specials)
    bos_chunk = fast.teacher_chunk_index[teacher.row_starts[:-1]]
    assert np.all(bos_chunk[nonempty] == -1)  # the student has no BOS
