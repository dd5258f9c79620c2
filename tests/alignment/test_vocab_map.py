"""MinED vocabulary map against a brute-force byte Levenshtein DP and hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from alignment_support import SHARED_TOKENIZERS, load_shared_tokenizer, trained_tokenizer
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

import ctd.alignment.vocab_map as vocab_map_module
from ctd.alignment import mined_vocab_map, nearest_by_edit_distance, token_bytes


def levenshtein(a: bytes, b: bytes) -> int:
    """Textbook O(len(a) * len(b)) dynamic programme over bytes."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def brute_force_nearest(query: bytes, candidates: list[tuple[int, bytes]]) -> int:
    """The candidate id with the smallest (distance, id): every candidate, no shortcuts."""
    return min((levenshtein(query, data), index) for index, data in candidates)[1]


def brute_force_map(student: object, teacher: object, bos_eos: tuple) -> list[int]:
    """The documented rules, written out one student id at a time."""
    sb, tb = token_bytes(student), token_bytes(teacher)
    (student_bos, student_eos), (teacher_bos, teacher_eos) = bos_eos
    teacher_text = [(i, tb.bytes_of[i]) for i in range(tb.vocab_size) if not tb.is_special[i]]
    teacher_special = [
        (i, tb.bytes_of[i]) for i in range(tb.vocab_size) if tb.is_special[i] and tb.bytes_of[i]
    ]
    out = []
    for index in range(sb.vocab_size):
        data = sb.bytes_of[index]
        if not sb.is_special[index]:
            out.append(brute_force_nearest(data, teacher_text))
        elif any(d == data for _, d in teacher_special) and data:
            out.append(min(i for i, d in teacher_special if d == data))
        elif index == student_eos and teacher_eos is not None:
            out.append(teacher_eos)
        elif index == student_bos and teacher_bos is not None:
            out.append(teacher_bos)
        else:
            out.append(brute_force_nearest(data, teacher_special))
    return out


def word_level(pieces: list[str], specials: tuple[str, ...] = ()) -> Tokenizer:
    """A WordLevel tokenizer whose ids are the list positions (specials appended, flagged)."""
    tokenizer = Tokenizer(
        models.WordLevel({p: i for i, p in enumerate(pieces)}, unk_token=pieces[0])
    )
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(list(specials))
    return tokenizer


@pytest.mark.parametrize(
    ("student_name", "teacher_name", "roles"),
    [
        # spm_bpe: dummy-prefix SentencePiece BPE with <0xNN> pieces and a "<s> $A" template
        ("spm_bpe", "byte_bpe", (("<s>", None), (None, None))),
        ("byte_bpe", "unigram", ((None, None), (None, None))),
        ("wordpiece", "spm_bpe", ((None, None), ("<s>", None))),
    ],
)
def test_matches_brute_force_on_trained_tokenizers(
    student_name: str, teacher_name: str, roles: tuple
) -> None:
    student, teacher = trained_tokenizer(student_name), trained_tokenizer(teacher_name)
    role_ids = tuple(
        tuple(None if name is None else tok.token_to_id(name) for name in side)
        for tok, side in zip((student, teacher), roles, strict=True)
    )
    result = mined_vocab_map(student, teacher)
    assert result.shape == (token_bytes(student).vocab_size,)
    assert result.dtype == np.int64
    expected = brute_force_map(student, teacher, role_ids)
    mismatches = [
        (i, token_bytes(student).bytes_of[i], int(result[i]), expected[i])
        for i in range(len(expected))
        if result[i] != expected[i]
    ]
    assert not mismatches, mismatches[:5]
    # not a degenerate pair: some ids need the edit-distance search
    sb, tb = token_bytes(student), token_bytes(teacher)
    assert any(sb.bytes_of[i] != tb.bytes_of[result[i]] for i in range(sb.vocab_size))


@pytest.mark.parametrize("name", ["byte_bpe", "spm_bpe", "unigram", "wordpiece"])
def test_same_tokenizer_maps_each_id_to_the_lowest_id_with_its_bytes(name: str) -> None:
    tokenizer = trained_tokenizer(name)
    table = token_bytes(tokenizer)
    first_with_bytes: dict[tuple[bool, bytes], int] = {}
    for index, data in enumerate(table.bytes_of):
        first_with_bytes.setdefault((bool(table.is_special[index]), data), index)
    pairs = zip(table.is_special, table.bytes_of, strict=True)
    expected = [first_with_bytes[(bool(s), d)] for s, d in pairs]
    result = mined_vocab_map(tokenizer, tokenizer)
    assert result.tolist() == expected
    # byte-unique ids map to themselves; duplicates exist in spm_bpe (<0x41> and "A") and
    # wordpiece ("##a" and "a")
    assert (result == np.arange(table.vocab_size)).sum() == len(set(first_with_bytes.values()))


def test_hand_worked_ties_and_bytes() -> None:
    # teacher ids: 0 "xyz", 1 "abd", 2 "ac", 3 "a", 4 "e", 5 "è", 6 "ab"
    teacher = word_level(["xyz", "abd", "ac", "a", "e", "è", "ab"])
    student = word_level(["ab", "abc", "q", "é", "ba"])
    result = mined_vocab_map(student, teacher).tolist()
    # "ab": exact match id 6, although ids 1, 2, 3 are at distance 1 and lower
    # "abc": distance 1 to "abd" (1), "ac" (2), "ab" (6); distance 2 to "a" -> lowest id 1
    # "q": distance 1 to "a" (3) and "e" (4) (one substitution), 2 to "ac"/"ab" -> 3
    # "é" (c3 a9): one byte from "è" (c3 a8), two from "e" (one char, but 2 byte edits) -> 5
    # "ba": distance 1 to "a" (3, delete b); 2 to "abd" (insert a, b->d), "ac", "ab" -> 3
    assert result == [6, 1, 3, 5, 3]


def test_nearest_by_edit_distance_lowest_id_wins_whatever_the_order() -> None:
    # all three choices at distance 1 from b"ab"; ids deliberately not in list order
    got = nearest_by_edit_distance([b"ab", b"ab"], [b"abx", b"b", b"xab"], [9, 4, 7])
    assert got.tolist() == [4, 4]
    # exact duplicates: the lowest id among them
    assert nearest_by_edit_distance([b"q"], [b"q", b"q"], [3, 2]).tolist() == [2]
    # a far query must still see the long choice (the window widens to every length)
    long = b"z" * 40
    assert nearest_by_edit_distance([b"z" * 41], [b"a", long], [0, 1]).tolist() == [1]
    with pytest.raises(ValueError, match="choice"):
        nearest_by_edit_distance([b"a"], [], [])


def _with_roles(tokenizer: Tokenizer, bos: str, eos: str) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos, eos_token=eos)


def test_special_tokens_by_content_then_role_then_nearest() -> None:
    teacher = word_level(["a", "b"], ("<bos>", "<eos>", "<|pad|>", "<|im_start|>"))
    student = word_level(["a", "b"], ("<s>", "</s>", "<pad>", "<|im_start|>", "<mask>"))
    teacher_ids = {t: teacher.token_to_id(t) for t in ("<bos>", "<eos>", "<|pad|>")}
    teacher_ids["<|im_start|>"] = teacher.token_to_id("<|im_start|>")
    result = mined_vocab_map(
        _with_roles(student, "<|im_start|>", "</s>"), _with_roles(teacher, "<bos>", "<eos>")
    )
    by_content = {p: int(result[student.token_to_id(p)]) for p in ("<s>", "</s>", "<pad>")}
    # "<s>" has no role here: nearest special; "<bos>" and "<eos>" both at distance 2 (insert
    # two bytes), "<|pad|>" at 5 -> the lower id, "<bos>"
    assert by_content["<s>"] == teacher_ids["<bos>"]
    assert by_content["</s>"] == teacher_ids["<eos>"]  # EOS -> EOS
    assert by_content["<pad>"] == teacher_ids["<|pad|>"]  # distance 2 (vs 3 for <bos>, <eos>)
    # the student's BOS "<|im_start|>" has an exact teacher special: content beats role
    assert result[student.token_to_id("<|im_start|>")] == teacher_ids["<|im_start|>"]
    # text tokens never map to specials and vice versa
    teacher_special = token_bytes(teacher).is_special
    assert not teacher_special[result[:2]].any()
    assert teacher_special[result[2:]].all()


def test_roles_from_the_post_processor_of_a_plain_tokenizer() -> None:
    student = word_level(["a"], ("<s>", "</s>"))
    student.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)]
    )
    teacher = word_level(["a"], ("[CLS]", "[SEP]"))
    teacher.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    assert mined_vocab_map(student, teacher).tolist() == [0, 1, 2]
    # without templates: no byte in common, so "<s>" and "</s>" are at distance 5 from both
    # "[CLS]" and "[SEP]" -> the lower id, 1, for both
    plain_student = word_level(["a"], ("<s>", "</s>"))
    plain_teacher = word_level(["a"], ("[CLS]", "[SEP]"))
    assert mined_vocab_map(plain_student, plain_teacher).tolist() == [0, 1, 1]


def test_padding_special_pairs_and_errors() -> None:
    student, teacher = trained_tokenizer("byte_bpe"), trained_tokenizer("spm_bpe")
    size = token_bytes(student).vocab_size
    padded = mined_vocab_map(student, teacher, student_vocab_size=size + 3)
    assert padded.shape == (size + 3,)
    np.testing.assert_array_equal(padded[:size], mined_vocab_map(student, teacher))
    # padding has no content: the shortest teacher special, lowest id ("<s>", 3 bytes)
    assert (padded[size:] == teacher.token_to_id("<s>")).all()
    forced = mined_vocab_map(
        student, teacher, special_pairs={0: 7, size + 1: 8}, student_vocab_size=size + 2
    )
    assert forced[0] == 7
    assert forced[size + 1] == 8
    with pytest.raises(ValueError, match="student_vocab_size"):
        mined_vocab_map(student, teacher, student_vocab_size=size - 1)
    with pytest.raises(ValueError, match="special_pairs"):
        mined_vocab_map(student, teacher, special_pairs={size: 0})
    with pytest.raises(TypeError):
        mined_vocab_map(None, teacher)


def test_cache_dir_round_trip(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    student, teacher = trained_tokenizer("byte_bpe"), trained_tokenizer("unigram")
    first = mined_vocab_map(student, teacher, cache_dir=tmp_path)
    files = list(tmp_path.glob("mined_vocab_map-*.npy"))
    assert len(files) == 1

    def fail(*args: object) -> None:
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(vocab_map_module, "_compute", fail)
    np.testing.assert_array_equal(mined_vocab_map(student, teacher, cache_dir=tmp_path), first)
    monkeypatch.undo()
    # another pair (or other arguments) gets another file
    mined_vocab_map(teacher, student, cache_dir=tmp_path)
    mined_vocab_map(student, teacher, cache_dir=tmp_path, student_vocab_size=1000)
    assert len(list(tmp_path.glob("mined_vocab_map-*.npy"))) == 3


def test_real_byte_level_student_maps_every_byte_to_its_byte() -> None:
    from transformers import AutoTokenizer

    from ctd.models import to_byte_level

    load_shared_tokenizer("qwen2")  # skips without ../shared
    load_shared_tokenizer("smollm2")
    teacher = AutoTokenizer.from_pretrained(SHARED_TOKENIZERS / "qwen2")
    student = to_byte_level(AutoTokenizer.from_pretrained(SHARED_TOKENIZERS / "smollm2"))
    result = mined_vocab_map(student, teacher)
    tb = token_bytes(teacher)
    assert [tb.bytes_of[result[b]] for b in range(256)] == [bytes([b]) for b in range(256)]
    for name in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert result[student.convert_tokens_to_ids(name)] == teacher.convert_tokens_to_ids(name)
