import random

import numpy as np
import pytest
from alignment_support import (
    LOSSLESS_TRAINED,
    load_fixture_tokenizer,
    load_shared_tokenizer,
    reference_texts,
    trained_tokenizer,
)
from helpers import brute_force_chunks, check_alignment_invariants
from hypothesis import given, settings
from hypothesis import strategies as st

from ctd.alignment import (
    TokenizationBias,
    TokenizedBatch,
    TokenizedText,
    align,
    align_batch,
    encode,
    token_bytes,
)


def tokens(
    spans: list[tuple[int, int]], special: list[bool] | None = None, ids=None
) -> TokenizedText:
    special = special or [False] * len(spans)
    ends = [e for _, e in spans]
    return TokenizedText(
        input_ids=np.array(ids or list(range(len(spans))), dtype=np.int64),
        byte_starts=np.array([s for s, _ in spans], dtype=np.int64),
        byte_ends=np.array(ends, dtype=np.int64),
        is_special=np.array(special, dtype=np.bool_),
        num_text_bytes=max(ends, default=0),
    )


def test_hand_worked_unconstrained() -> None:
    # text "Hello world" (11 bytes); teacher: "Hel" "lo" " world"; student: "Hello" " wor" "ld"
    teacher = tokens([(0, 3), (3, 5), (5, 11)])
    student = tokens([(0, 5), (5, 9), (9, 11)])
    result = align(teacher, student)
    assert result.num_chunks == 2
    assert result.teacher_chunk_index.tolist() == [0, 0, 1]
    assert result.student_chunk_index.tolist() == [0, 1, 1]
    assert result.chunk_byte_starts.tolist() == [0, 5]
    assert result.chunk_byte_ends.tolist() == [5, 11]
    assert result.teacher_chunk_last_token.tolist() == [1, 2]
    assert result.student_chunk_last_token.tolist() == [0, 2]


def test_one_sided_bos_never_swallows_a_chunk() -> None:
    # student has BOS (zero-width special at 0), teacher has none: "ab cd"
    teacher = tokens([(0, 2), (2, 5)])
    student = tokens([(0, 0), (0, 2), (2, 3), (3, 5)], special=[True, False, False, False])
    result = align(teacher, student)
    assert result.student_chunk_index.tolist() == [-1, 0, 1, 1]
    assert result.teacher_chunk_index.tolist() == [0, 1]
    assert result.chunk_byte_starts.tolist() == [0, 2]


def test_bos_on_both_sides_forms_a_zero_width_chunk() -> None:
    teacher = tokens([(0, 0), (0, 2)], special=[True, False])
    student = tokens([(0, 0), (0, 1), (1, 2)], special=[True, False, False])
    result = align(teacher, student)
    assert result.teacher_chunk_index.tolist() == [0, 1]
    assert result.student_chunk_index.tolist() == [0, 1, 1]
    assert result.chunk_byte_starts.tolist() == [0, 0]
    assert result.chunk_byte_ends.tolist() == [0, 2]
    unpaired = align(teacher, student, pair_specials=False)
    assert unpaired.teacher_chunk_index.tolist() == [-1, 0]


def test_text_starting_with_a_space_keeps_its_chunks() -> None:
    text = " Hello world"
    teacher_tok = load_fixture_tokenizer("gpt2")  # " Hello" " world"
    student_tok = load_fixture_tokenizer("mistral-v3-spm")  # <s> "▁" "▁Hello" "▁world"
    (teacher,) = encode(teacher_tok, [text])
    (student,) = encode(student_tok, [text])
    result = align(teacher, student)
    assert result.chunk_byte_starts.tolist() == [0, 6]
    assert result.chunk_byte_ends.tolist() == [6, 12]
    assert result.student_chunk_index[0] == -1  # BOS, one-sided
    check_alignment_invariants(teacher, student, result)


def test_multibyte_character_split_differently() -> None:
    text = "🤗!"  # gpt2 splits the emoji into byte pieces; mistral into <0xNN> tokens
    (teacher,) = encode(load_fixture_tokenizer("gpt2"), [text])
    (student,) = encode(load_fixture_tokenizer("mistral-v3-spm"), [text])
    result = align(teacher, student)
    check_alignment_invariants(teacher, student, result)
    assert result.chunk_byte_ends[-1] == 5


def test_one_sided_special_in_text_is_excluded() -> None:
    text = "a<|endoftext|>b"
    (teacher,) = encode(load_fixture_tokenizer("gpt2"), [text])  # special token
    (student,) = encode(load_fixture_tokenizer("mistral-v3-spm"), [text])  # plain pieces
    result = align(teacher, student)
    special = int(np.flatnonzero(teacher.is_special)[0])
    assert result.teacher_chunk_index[special] == -1
    check_alignment_invariants(teacher, student, result)


def test_different_texts_raise() -> None:
    with pytest.raises(ValueError, match="different texts"):
        align(tokens([(0, 2)]), tokens([(0, 3)]))
    with pytest.raises(ValueError, match="unknown mode"):
        align(tokens([(0, 2)]), tokens([(0, 2)]), mode="words")


def _pairs() -> list[tuple[object, object]]:
    names = LOSSLESS_TRAINED
    return [(trained_tokenizer(a), trained_tokenizer(b)) for a in names for b in names if a != b]


@settings(max_examples=30, deadline=None)
@given(text=st.text(max_size=60), seed=st.integers(0, 10**6))
def test_brute_force_reference_on_random_pairs(text: str, seed: int) -> None:
    teacher_tok, student_tok = random.Random(seed).choice(_pairs())
    (teacher,) = encode(teacher_tok, [text])
    (student,) = encode(student_tok, [text])
    result = align(teacher, student)
    check_alignment_invariants(teacher, student, result)
    text_chunks = [
        (int(s), int(e))
        for s, e in zip(result.chunk_byte_starts, result.chunk_byte_ends, strict=True)
        if e > s
    ]
    assert text_chunks == brute_force_chunks(teacher, student)


@pytest.mark.parametrize(
    ("teacher_name", "student_name"), [("llama3", "gemma3"), ("qwen2", "llama2")]
)
def test_real_pairs_on_reference_texts(teacher_name: str, student_name: str) -> None:
    texts = reference_texts()
    teacher = encode(load_shared_tokenizer(teacher_name), texts)
    student = encode(load_shared_tokenizer(student_name), texts)
    batch = align_batch(TokenizedBatch.from_rows(teacher), TokenizedBatch.from_rows(student))
    for row, (t, s) in enumerate(zip(teacher, student, strict=True)):
        single = align(t, s)
        check_alignment_invariants(t, s, single)
        assert batch.row(row).teacher_chunk_index.tolist() == single.teacher_chunk_index.tolist()
        text_chunks = [
            (int(a), int(b))
            for a, b in zip(single.chunk_byte_starts, single.chunk_byte_ends, strict=True)
            if b > a
        ]
        assert text_chunks == brute_force_chunks(t, s)


def test_space_mode_merges_to_words() -> None:
    text = "Hello wonderful world"
    teacher_tok, student_tok = load_fixture_tokenizer("gpt2"), load_fixture_tokenizer("phi3")
    (teacher,) = encode(teacher_tok, [text], add_special_tokens=False)
    (student,) = encode(student_tok, [text], add_special_tokens=False)
    result = align(
        teacher,
        student,
        mode="space",
        teacher_token_bytes=token_bytes(teacher_tok),
        student_token_bytes=token_bytes(student_tok),
    )
    check_alignment_invariants(teacher, student, result)
    assert result.chunk_byte_starts.tolist() == [0, 5, 15]
    with pytest.raises(ValueError, match="teacher_token_bytes"):
        align(teacher, student, mode="space")


def test_unbiased_mode_thresholds() -> None:
    teacher = tokens([(0, 3), (3, 5), (5, 11)], ids=[0, 1, 2])
    student = tokens([(0, 3), (3, 5), (5, 11)], ids=[0, 1, 2])
    never = TokenizationBias(np.ones(3), np.ones(3), threshold=0.5)
    always = TokenizationBias(np.zeros(3), np.zeros(3), threshold=0.5)
    assert align(teacher, student, mode="unbiased", bias=never).num_chunks == 1
    assert align(teacher, student, mode="unbiased", bias=always).num_chunks == 3
    partly = TokenizationBias(np.array([0.9, 0.0, 0.0]), np.zeros(3), threshold=0.5)
    merged = align(teacher, student, mode="unbiased", bias=partly)
    assert merged.chunk_byte_ends.tolist() == [5, 11]
    assert merged.teacher_chunk_last_token.tolist() == [1, 2]
