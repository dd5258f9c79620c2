"""K-way alignment (`align_many`, `MultiTokenizerCollator`) against independent references.

References: the boundary-set intersection of K sides (brute force, sets), the pair `align`
(K = 2 and K = 3 with a repeated side), each pair's own alignment (K-way chunks coarsen it).
"""

import dataclasses
import importlib
import itertools
import random

import numpy as np
import pytest
from alignment_support import (
    LOSSLESS_TRAINED,
    load_fixture_tokenizer,
    reference_texts,
    trained_tokenizer,
)
from helpers import text_token_spans
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fast_paths import TEMPLATES, _with_specials

from ctd.alignment import (
    CrossTokenizerCollator,
    MultiChunkAlignment,
    MultiTokenizerCollator,
    TokenizedBatch,
    TokenizedText,
    align,
    align_many,
    align_many_batch,
    encode,
    encode_batch,
    token_bytes,
)

align_module = importlib.import_module("ctd.alignment.align")


def brute_force_many(sides: list[TokenizedText]) -> list[tuple[int, int]]:
    """Byte spans of the text chunks of K tokenizations: consecutive offsets of the intersection
    of the K boundary sets whose interval every side tiles with text tokens only."""
    spans = [text_token_spans(side) for side in sides]
    boundary_sets = [{pos for start, end, _ in side for pos in (start, end)} for side in spans]
    common = sorted(set.intersection(*boundary_sets))
    chunks = []
    for left, right in itertools.pairwise(common):
        ok = True
        for side in spans:
            inside = [(s, e, sp) for s, e, sp in side if left <= s and e <= right and e > s]
            ok &= sum(e - s for s, e, _ in inside) == right - left
            ok &= {sp for _, _, sp in inside} == {False}
        if ok:
            chunks.append((left, right))
    return chunks


def check_many_invariants(sides: list[TokenizedText], result: MultiChunkAlignment) -> None:
    """Sorted chunks; on every side >= 1 contiguous token per chunk, tiling exactly its bytes."""
    starts, ends = result.chunk_byte_starts, result.chunk_byte_ends
    assert all(ends[:-1] <= starts[1:]), "chunks overlap or are out of order"
    assert result.num_sides == len(sides)
    for tokens, index, last in zip(sides, result.chunk_index, result.chunk_last_token, strict=True):
        assert len(index) == len(tokens)
        for chunk in range(result.num_chunks):
            members = np.flatnonzero(index == chunk).tolist()
            assert members, f"chunk {chunk} has no token"
            assert members == list(range(members[0], members[-1] + 1)), "not contiguous"
            assert members[-1] == last[chunk]
            widths = tokens.byte_ends[members] - tokens.byte_starts[members]
            assert tokens.byte_starts[members[0]] == starts[chunk]
            assert tokens.byte_ends[members[-1]] == ends[chunk]
            assert widths.sum() == ends[chunk] - starts[chunk], "side does not tile its chunk"


def text_chunks(result: MultiChunkAlignment) -> list[tuple[int, int]]:
    return [
        (int(s), int(e))
        for s, e in zip(result.chunk_byte_starts, result.chunk_byte_ends, strict=True)
        if e > s
    ]


def tokens(spans: list[tuple[int, int]], special: list[bool] | None = None) -> TokenizedText:
    special = special or [False] * len(spans)
    return TokenizedText(
        input_ids=np.arange(len(spans), dtype=np.int64),
        byte_starts=np.array([s for s, _ in spans], dtype=np.int64),
        byte_ends=np.array([e for _, e in spans], dtype=np.int64),
        is_special=np.array(special, dtype=np.bool_),
        num_text_bytes=max((e for _, e in spans), default=0),
    )


def test_hand_worked_three_sides() -> None:
    # "Hello world" (11 bytes). A: Hel|lo| world  B: Hello| wor|ld  C: He|llo| w|orld
    # boundaries: A {0,3,5,11}, B {0,5,9,11}, C {0,2,5,7,11} -> common {0,5,11}
    first = tokens([(0, 3), (3, 5), (5, 11)])
    second = tokens([(0, 5), (5, 9), (9, 11)])
    third = tokens([(0, 2), (2, 5), (5, 7), (7, 11)])
    result = align_many([first, second, third])
    assert result.num_chunks == 2
    assert [index.tolist() for index in result.chunk_index] == [
        [0, 0, 1],
        [0, 1, 1],
        [0, 0, 1, 1],
    ]
    assert result.chunk_byte_starts.tolist() == [0, 5]
    assert result.chunk_byte_ends.tolist() == [5, 11]
    assert [last.tolist() for last in result.chunk_last_token] == [[1, 2], [0, 2], [1, 3]]


def test_a_bos_on_two_of_three_sides_is_in_no_chunk() -> None:
    bos = tokens([(0, 0), (0, 2), (2, 4)], special=[True, False, False])
    plain = tokens([(0, 4)])
    result = align_many([bos, bos, plain])
    assert result.chunk_index[0].tolist() == [-1, 0, 0]
    assert result.chunk_index[2].tolist() == [0]
    everywhere = align_many([bos, bos, bos])
    assert everywhere.chunk_index[0].tolist() == [0, 1, 2]  # paired on all three
    assert everywhere.chunk_byte_ends.tolist() == [0, 2, 4]


def _triples() -> list[tuple[object, ...]]:
    names = LOSSLESS_TRAINED
    return [
        tuple(trained_tokenizer(n) for n in triple) for triple in itertools.permutations(names, 3)
    ]


WORDY = st.text(alphabet="The quick brown fox jumps over lazy dog, Grüße 中文 123!", max_size=80)


@settings(max_examples=40, deadline=None)
@given(text=st.one_of(st.text(max_size=60), WORDY), seed=st.integers(0, 10**6))
def test_brute_force_reference_on_random_triples(text: str, seed: int) -> None:
    triple = random.Random(seed).choice(_triples())
    sides = [encode(tokenizer, [text])[0] for tokenizer in triple]
    result = align_many(sides)
    check_many_invariants(sides, result)
    assert text_chunks(result) == brute_force_many(sides)


def _fields_equal(first: object, second: object) -> None:
    for field in dataclasses.fields(first):  # type: ignore[arg-type]
        a, b = getattr(first, field.name), getattr(second, field.name)
        if isinstance(a, (tuple, list)):  # one array per side
            assert len(a) == len(b), field.name
            assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), field.name
        else:
            assert np.array_equal(a, b), field.name


@settings(max_examples=30, deadline=None)
@given(
    text=st.text(max_size=60),
    seed=st.integers(0, 10**6),
    mode=st.sampled_from(["unconstrained", "space"]),
)
def test_two_sides_and_a_repeated_side_equal_the_pair_align(
    text: str, seed: int, mode: str
) -> None:
    teacher_tok, student_tok, _ = random.Random(seed).choice(_triples())
    (teacher,), (student,) = encode(teacher_tok, [text]), encode(student_tok, [text])
    tables = [token_bytes(teacher_tok), token_bytes(student_tok)]
    pair = align(
        teacher, student, mode=mode, teacher_token_bytes=tables[0], student_token_bytes=tables[1]
    )
    for sides, order in (([teacher, student], [0, 1]), ([teacher, student, student], [0, 1, 1])):
        many = align_many(sides, mode=mode, token_bytes=[tables[k] for k in order])
        assert many.num_chunks == pair.num_chunks
        assert many.chunk_index[0].tolist() == pair.teacher_chunk_index.tolist()
        for side in range(1, len(sides)):
            assert many.chunk_index[side].tolist() == pair.student_chunk_index.tolist()
            assert many.chunk_last_token[side].tolist() == pair.student_chunk_last_token.tolist()
        assert many.chunk_last_token[0].tolist() == pair.teacher_chunk_last_token.tolist()
        assert many.chunk_byte_starts.tolist() == pair.chunk_byte_starts.tolist()
        assert many.chunk_byte_ends.tolist() == pair.chunk_byte_ends.tolist()


def _boundaries(starts: np.ndarray, ends: np.ndarray) -> set[int]:
    return {int(x) for x in starts} | {int(x) for x in ends}


@pytest.mark.parametrize("mode", ["unconstrained", "space"])
def test_three_way_chunks_coarsen_every_pair_and_ignore_side_order(mode: str) -> None:
    tokenizers = [trained_tokenizer(name) for name in ("byte_bpe", "spm_bpe", "byte_bpe_digits")]
    tables = [token_bytes(tokenizer) for tokenizer in tokenizers]
    texts = [*reference_texts()[:40], "", "a", " é 🤗!"]
    batches = [encode_batch(tokenizer, texts) for tokenizer in tokenizers]
    many = align_many_batch(batches, mode=mode, token_bytes=tables)
    for order in itertools.permutations(range(3)):
        permuted = align_many_batch(
            [batches[k] for k in order], mode=mode, token_bytes=[tables[k] for k in order]
        )
        for slot, side in enumerate(order):
            assert np.array_equal(permuted.chunk_index[slot], many.chunk_index[side])
        assert np.array_equal(permuted.chunk_byte_ends, many.chunk_byte_ends)
    for first, second in itertools.combinations(range(3), 2):
        pair = align_many_batch(
            [batches[first], batches[second]],
            mode=mode,
            token_bytes=[tables[first], tables[second]],
        )
        for row in range(len(texts)):
            many_row, pair_row = many.row(row), pair.row(row)
            assert _boundaries(many_row.chunk_byte_starts, many_row.chunk_byte_ends) <= _boundaries(
                pair_row.chunk_byte_starts, pair_row.chunk_byte_ends
            )
            assert many_row.num_chunks <= pair_row.num_chunks


@pytest.mark.parametrize("pair_specials", [True, False])
@pytest.mark.parametrize(
    "templates", [("bos", "bos", "bos"), ("bos+eos", "eos", "bos+eos"), ("none", "bos", "eos")]
)
@pytest.mark.parametrize("mode", ["unconstrained", "space"])
def test_three_way_fast_path_equals_the_general_path(
    templates: tuple[str, str, str], mode: str, pair_specials: bool, monkeypatch
) -> None:
    names = [("fixture", "gpt2"), ("fixture", "smollm2"), ("trained", "byte_bpe_digits")]
    tokenizers = [
        load_fixture_tokenizer(name) if source == "fixture" else trained_tokenizer(name)
        for source, name in names
    ]
    texts = [*reference_texts()[:30], "", " ", "a", " é 🤗!"]
    batches = []
    for tokenizer, template in zip(tokenizers, templates, strict=True):
        plain = encode_batch(tokenizer, texts, add_special_tokens=False)
        leading, trailing = TEMPLATES[template]
        batches.append(_with_specials(plain, [leading] * len(texts), [trailing] * len(texts)))
    options = {"mode": mode, "token_bytes": [token_bytes(t) for t in tokenizers]}
    options["pair_specials"] = pair_specials
    decided = []
    tiled = align_module.tiled_alignment
    with monkeypatch.context() as patch:
        patch.setattr(align_module, "tiled_alignment", lambda *a: decided.append(tiled(*a)))
        align_many_batch(batches, **options)
    assert len(decided) == 1
    assert decided[0] is not None  # the fast path decided
    fast = align_many_batch(batches, **options)
    with monkeypatch.context() as patch:
        patch.setattr(align_module, "template_layout", lambda _: None)
        general = align_many_batch(batches, **options)
    _fields_equal(fast, general)
    for row in range(len(texts)):
        sides = [batch.row(row) for batch in batches]
        check_many_invariants(sides, fast.row(row))
        if mode == "unconstrained":
            assert text_chunks(fast.row(row)) == brute_force_many(sides)


def test_bad_input_is_refused() -> None:
    one = tokens([(0, 2)])
    with pytest.raises(ValueError, match="at least 2 tokenizations"):
        align_many([one])
    with pytest.raises(ValueError, match="different texts"):
        align_many([one, one, tokens([(0, 3)])])
    with pytest.raises(ValueError, match="pairwise"):
        align_many([one, one, one], mode="unbiased")
    with pytest.raises(ValueError, match="token_bytes has 2 entries for 3 sides"):
        align_many([one, one, one], token_bytes=[None, None])
    with pytest.raises(ValueError, match="needs the token bytes of every side"):
        align_many([tokens([(0, 1), (1, 2)])] * 3, mode="space")


def _gpt2_spm_phi3() -> list[object]:
    return [load_fixture_tokenizer(name) for name in ("gpt2", "mistral-v3-spm", "phi3")]


def test_collator_three_sides_agree_with_align_many() -> None:
    tokenizers = _gpt2_spm_phi3()
    texts = ["The quick brown fox", " jumps over 12345 dogs!", "café 🤗 naïve"]
    batch = MultiTokenizerCollator(tokenizers, max_lengths=[64, 64, 64])(texts)
    assert batch.num_sides == 3
    encoded = [encode(tokenizer, texts) for tokenizer in tokenizers]
    for row in range(len(texts)):
        reference = align_many([side[row] for side in encoded])
        num_chunks = int(batch.num_chunks[row])
        assert num_chunks == reference.num_chunks
        assert batch.chunk_num_bytes[row].sum() == len(texts[row].encode())
        for side, tokens_of_side in enumerate(encoded):
            length = len(tokens_of_side[row])
            assert (
                batch.input_ids[side][row, :length].tolist()
                == tokens_of_side[row].input_ids.tolist()
            )
            assert batch.attention_mask[side][row].sum() == length
            index = batch.chunk_index[side][row]
            assert index[:length].tolist() == reference.chunk_index[side].tolist()
            assert (index[length:] == -1).all()
            last = batch.chunk_last_token[side][row, :num_chunks]
            assert last.tolist() == reference.chunk_last_token[side].tolist()


def test_two_sided_collator_equals_the_cross_tokenizer_collator() -> None:
    teacher, student, _ = _gpt2_spm_phi3()
    texts = ["Hello world", {"text": " a longer text, with 🤗 and café"}, "internationalization"]
    pair = CrossTokenizerCollator(teacher, student, max_teacher_length=5, max_student_length=6)
    many = MultiTokenizerCollator([teacher, student], max_lengths=[5, 6])
    _fields_equal(pair(texts), many(texts).pair(0, 1))


def test_collator_truncation_keeps_only_chunks_every_side_completes() -> None:
    tokenizers = _gpt2_spm_phi3()
    text = "internationalization of everything and more"
    full = MultiTokenizerCollator(tokenizers, max_lengths=[64] * 3)([text])
    cut = MultiTokenizerCollator(tokenizers, max_lengths=[64, 4, 64])([text])
    kept = int(cut.num_chunks[0])
    assert 0 < kept < int(full.num_chunks[0])
    assert cut.chunk_num_bytes[0, :kept].tolist() == full.chunk_num_bytes[0, :kept].tolist()
    assert int(cut.chunk_index[1][0].max()) == kept - 1


def test_collator_bad_input() -> None:
    tokenizers = _gpt2_spm_phi3()
    with pytest.raises(ValueError, match="pairwise"):
        MultiTokenizerCollator(tokenizers, max_lengths=[8] * 3, mode="unbiased", bias="x.npz")
    with pytest.raises(ValueError, match="max_lengths has 2 entries for 3 tokenizers"):
        MultiTokenizerCollator(tokenizers, max_lengths=[8, 8])
    with pytest.raises(ValueError, match="at least 2 tokenizers"):
        MultiTokenizerCollator(tokenizers[:1], max_lengths=[8])


def test_batch_pair_view_needs_two_sides() -> None:
    one = TokenizedBatch.from_rows([tokens([(0, 2)])])
    with pytest.raises(ValueError, match="needs 2 sides, this alignment has 3"):
        align_many_batch([one, one, one]).pair()
