import numpy as np
import pytest
import torch
from alignment_support import SHARED, load_fixture_tokenizer, trained_tokenizer
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from ctd.alignment import (
    CrossTokenizerBatch,
    CrossTokenizerCollator,
    TokenizationBias,
    alignment_statistics,
    encode,
)


def make(max_teacher: int = 64, max_student: int = 64, **kwargs) -> CrossTokenizerCollator:
    return CrossTokenizerCollator(
        load_fixture_tokenizer("gpt2"),
        load_fixture_tokenizer("mistral-v3-spm"),
        max_teacher_length=max_teacher,
        max_student_length=max_student,
        **kwargs,
    )


def test_shapes_and_padding() -> None:
    batch = make()(["Hello world", {"text": " a longer text, with 🤗 and café"}])
    assert isinstance(batch, CrossTokenizerBatch)
    b, tt = batch.teacher_input_ids.shape
    assert b == 2
    assert batch.teacher_chunk_index.shape == (2, tt)
    assert batch.chunk_num_bytes.shape == (2, int(batch.num_chunks.max()))
    assert batch.teacher_input_ids.dtype == torch.long
    assert batch.teacher_loss_mask.dtype == torch.bool
    padded = batch.teacher_attention_mask == 0
    assert (batch.teacher_chunk_index[padded] == -1).all()
    assert not batch.teacher_loss_mask[padded].any()
    # chunk bytes sum to the text bytes of each row (no truncation here)
    assert batch.chunk_num_bytes.sum(1).tolist() == [
        11,
        len(" a longer text, with 🤗 and café".encode()),
    ]
    assert batch.to("cpu").num_chunks.tolist() == batch.num_chunks.tolist()


def test_chunk_index_matches_per_text_alignment() -> None:
    texts = ["The quick brown fox", " jumps over 12345 dogs!"]
    batch = make()(texts)
    teacher = encode(load_fixture_tokenizer("gpt2"), texts)
    for row, tokens in enumerate(teacher):
        assert batch.teacher_input_ids[row, : len(tokens)].tolist() == tokens.input_ids.tolist()
        last = batch.teacher_chunk_last_token[row, : int(batch.num_chunks[row])]
        index = batch.teacher_chunk_index[row]
        for chunk, token in enumerate(last.tolist()):
            assert index[token] == chunk
            assert token + 1 >= len(index) or index[token + 1] != chunk


def test_truncation_drops_trailing_partial_chunk() -> None:
    text = "internationalization of everything"
    full = make()([text])
    cut = make(max_teacher=3)([text])
    assert cut.teacher_input_ids.shape[1] == 3
    assert int(cut.num_chunks[0]) < int(full.num_chunks[0])
    covered = int(cut.chunk_num_bytes[0].sum())
    assert covered <= len(text)
    kept = cut.student_chunk_index[0][cut.student_chunk_index[0] >= 0]
    assert kept.max() == cut.num_chunks[0] - 1


def test_statistics() -> None:
    stats = alignment_statistics(make()(["Hello world", "abc def"]))
    assert set(stats) == {
        "align/chunks_per_row",
        "align/bytes_per_chunk",
        "align/teacher_tokens_in_chunks",
        "align/student_tokens_in_chunks",
    }
    assert 0 < stats["align/teacher_tokens_in_chunks"] <= 1


def tiny_bpe(vocab: str, merges: list[tuple[str, str]]) -> Tokenizer:
    """Byte-level BPE over "Ġabcd" (Ġ = space), the whole text one word (no regex split)."""
    tokenizer = Tokenizer(models.BPE({piece: i for i, piece in enumerate(vocab.split())}, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


# Teacher merges Ġ+a, then Ġa+b; student merges a+b, then ab+d. Worked by applying the merges
# in rank order to the characters (Ġ = one space byte):
#   " abc abd" (8 bytes)  teacher Ġab(0-3) c(3-4) Ġab(4-7) d(7-8)
#                         student Ġ(0-1) ab(1-3) c(3-4) Ġ(4-5) abd(5-8)
#     boundaries: teacher {0,3,4,7,8}, student {0,1,3,4,5,8}; common {0,3,4,8}
#   "  ab" (4 bytes)      teacher Ġ(0-1) Ġab(1-4); student Ġ(0-1) Ġ(1-2) ab(2-4)
#     boundaries: teacher {0,1,4}, student {0,1,2,4}; common {0,1,4}
TEXTS = [" abc abd", "  ab"]
TEACHER_IDS = {"Ġ": 0, "a": 1, "b": 2, "c": 3, "d": 4, "Ġa": 5, "Ġab": 6}


def tiny_collator(mode: str, bias: TokenizationBias | None = None) -> CrossTokenizerCollator:
    return CrossTokenizerCollator(
        tiny_bpe("Ġ a b c d Ġa Ġab", [("Ġ", "a"), ("Ġa", "b")]),
        tiny_bpe("Ġ a b c d ab abd", [("a", "b"), ("ab", "d")]),
        max_teacher_length=16,
        max_student_length=16,
        mode=mode,
        bias=bias,
    )


def chunks_of(batch: CrossTokenizerBatch, row: int) -> tuple[list[int], list[int], list[int]]:
    num = int(batch.num_chunks[row])
    teacher = batch.teacher_chunk_index[row][batch.teacher_attention_mask[row] == 1]
    student = batch.student_chunk_index[row][batch.student_attention_mask[row] == 1]
    return batch.chunk_num_bytes[row, :num].tolist(), teacher.tolist(), student.tolist()


def test_tiny_tokenizers_segment_as_worked_out() -> None:
    collator = tiny_collator("unconstrained")
    assert collator.teacher_tokenizer.encode(TEXTS[0]).tokens == ["Ġab", "c", "Ġab", "d"]
    assert collator.student_tokenizer.encode(TEXTS[0]).tokens == ["Ġ", "ab", "c", "Ġ", "abd"]
    assert collator.teacher_tokenizer.encode(TEXTS[1]).tokens == ["Ġ", "Ġab"]
    assert collator.student_tokenizer.encode(TEXTS[1]).tokens == ["Ġ", "Ġ", "ab"]


def test_unconstrained_chunks_by_hand() -> None:
    batch = tiny_collator("unconstrained")(TEXTS)
    # every common boundary: " ab" | "c" | " abd"
    assert chunks_of(batch, 0) == ([3, 1, 4], [0, 1, 2, 2], [0, 0, 1, 2, 2])
    # " " | " ab" (student: Ġ | Ġ ab)
    assert chunks_of(batch, 1) == ([1, 3], [0, 1], [0, 1, 1])


def test_space_chunks_by_hand() -> None:
    batch = tiny_collator("space")(TEXTS)
    # boundary 3: the next tokens are "c" on both sides (no space): merged; boundary 4: the
    # next tokens "Ġab" / "Ġ" start with a space: kept -> " abc" | " abd"
    assert chunks_of(batch, 0) == ([4, 4], [0, 0, 1, 1], [0, 0, 0, 1, 1])
    # boundary 1: next "Ġab" / "Ġ": kept
    assert chunks_of(batch, 1) == ([1, 3], [0, 1], [0, 1, 1])


def test_unbiased_chunks_by_hand(tmp_path) -> None:
    # only the teacher's "c", "Ġ" and "d" are biased (0.5 > 0.1), everything else 0; "d" ends
    # row 0, and the end of a row always ends a chunk
    teacher_bias = np.zeros(7)
    teacher_bias[[TEACHER_IDS["c"], TEACHER_IDS["Ġ"], TEACHER_IDS["d"]]] = 0.5
    bias = TokenizationBias(teacher_bias, np.zeros(7), threshold=0.1)
    path = tmp_path / "bias.npz"
    bias.save(path)
    batch = tiny_collator("unbiased", bias)(TEXTS)
    # boundary 3 ends teacher "Ġab" / student "ab" (both 0): kept; boundary 4 ends teacher
    # "c" (0.5): merged -> " ab" | "c abd"
    assert chunks_of(batch, 0) == ([3, 5], [0, 1, 1, 1], [0, 0, 1, 1, 1])
    # boundary 1 ends teacher "Ġ" (0.5): merged -> one chunk "  ab"
    assert chunks_of(batch, 1) == ([4], [0, 0], [0, 0, 0])
    from_file = tiny_collator("unbiased", str(path))(TEXTS)  # type: ignore[arg-type]
    assert torch.equal(from_file.chunk_num_bytes, batch.chunk_num_bytes)
    # a threshold at 0.5 keeps every boundary: the unconstrained chunks
    loose = tiny_collator("unbiased", TokenizationBias(teacher_bias, np.zeros(7), 0.5))(TEXTS)
    assert chunks_of(loose, 0) == ([3, 1, 4], [0, 1, 2, 2], [0, 0, 1, 2, 2])


def test_unbiased_mode_needs_bias_and_every_biased_boundary_merges(tmp_path) -> None:
    path = tmp_path / "bias.npz"
    TokenizationBias(np.ones(50257), np.ones(32768), 0.1).save(path)
    merged = make(mode="unbiased", bias=str(path))(["Hello wonderful world"])
    assert merged.num_chunks.tolist() == [1]  # every boundary biased: one chunk (no BOS pair)
    assert merged.chunk_num_bytes[0].tolist() == [len("Hello wonderful world")]
    with pytest.raises(ValueError, match="bias"):
        make(mode="unbiased")


def test_bad_examples() -> None:
    with pytest.raises(TypeError):
        make()("not a list")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        make()([None])
    with pytest.raises(ValueError, match="mixes"):
        make()(["a", {"messages": [{"role": "user", "content": "a"}]}])


def test_chat_roles_and_assistant_mask() -> None:
    transformers = pytest.importorskip("transformers")
    teacher = transformers.PreTrainedTokenizerFast(
        tokenizer_object=load_fixture_tokenizer("smollm2")
    )
    teacher.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}"
    )
    student = transformers.PreTrainedTokenizerFast(tokenizer_object=load_fixture_tokenizer("phi3"))
    student.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    )
    collator = CrossTokenizerCollator(
        teacher, student, max_teacher_length=128, max_student_length=128
    )
    messages = [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "It is 4, of course."},
    ]
    batch = collator([{"messages": messages}])
    assert int(batch.chunk_num_bytes[0].sum()) <= len("What is 2 + 2?It is 4, of course.")
    for side in ("teacher", "student"):
        ids = getattr(batch, f"{side}_input_ids")[0]
        mask = getattr(batch, f"{side}_loss_mask")[0]
        tok = teacher if side == "teacher" else student
        assert tok.decode(ids[mask].tolist()).strip() == "It is 4, of course."
    # the assistant's content is chunked: its bytes are covered by chunks on both sides
    assert (batch.teacher_chunk_index[0][batch.teacher_loss_mask[0]] >= 0).all()
    assert (batch.student_chunk_index[0][batch.student_loss_mask[0]] >= 0).all()


def test_chat_needs_a_template() -> None:
    collator = CrossTokenizerCollator(
        trained_tokenizer("byte_bpe"),
        trained_tokenizer("spm_bpe"),
        max_teacher_length=8,
        max_student_length=8,
    )
    with pytest.raises(TypeError, match="chat template"):
        collator([{"messages": [{"role": "user", "content": "hi"}]}])


def test_chat_with_real_templates() -> None:
    transformers = pytest.importorskip("transformers")
    folder = SHARED / "assets" / "tokenizers" / "qwen2.5"
    if not folder.exists():
        pytest.skip("../shared absent: no real chat template")
    teacher = transformers.AutoTokenizer.from_pretrained(str(folder))
    student = transformers.PreTrainedTokenizerFast(tokenizer_object=load_fixture_tokenizer("phi3"))
    student.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    )
    collator = CrossTokenizerCollator(
        teacher, student, max_teacher_length=256, max_student_length=256
    )
    messages = [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue, like the sky."},
    ]
    batch = collator([{"messages": messages}])
    ids = batch.teacher_input_ids[0][batch.teacher_loss_mask[0]].tolist()
    assert teacher.decode(ids) == "Blue, like the sky."
    assert int(batch.chunk_num_bytes[0].sum()) > 0


def skipping(**kwargs) -> CrossTokenizerCollator:
    return CrossTokenizerCollator(
        trained_tokenizer("wordpiece"),  # "ℵ" is an <unk>: no exact byte span
        trained_tokenizer("byte_bpe"),
        max_teacher_length=64,
        max_student_length=64,
        **kwargs,
    )


def test_unmappable_example_raises_by_default() -> None:
    with pytest.raises(ValueError, match="unknown"):
        skipping()(["hello world", "ℵ"])


def test_unmappable_example_is_skipped_with_a_warning() -> None:
    collator = skipping(on_unmappable="skip")
    clean = skipping()(["hello world", "a b"])
    with pytest.warns(RuntimeWarning, match=r"skipped example 1 of a batch of 3: .*unknown.*\(1 "):
        batch = collator(["hello world", "ℵ", "a b"])
    assert batch.teacher_input_ids.shape[0] == 2  # the odd example is dropped, not misaligned
    for field in ("teacher_input_ids", "student_chunk_index", "chunk_num_bytes"):
        assert torch.equal(getattr(batch, field), getattr(clean, field))
    with pytest.warns(RuntimeWarning, match=r"\(2 skipped so far\)"):
        collator(["ℵ", "hello"])
    assert collator.num_skipped == 2


def test_all_unmappable_batch_raises_even_when_skipping() -> None:
    with pytest.raises(ValueError, match="every example of this batch"):
        skipping(on_unmappable="skip")(["ℵ"])
    with pytest.raises(ValueError, match="on_unmappable"):
        skipping(on_unmappable="ignore")
