"""End to end: files -> CrossTokenizerDataModule -> the real CrossTokenizerCollator -> batches."""

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from ctd.data import (
    CrossTokenizerDataModule,
    demo_corpus_paths,
    read_examples,
    suggest_max_document_bytes,
)
from ctd.metrics import BitsPerByte, joint_valid_chunk_mask

alignment = pytest.importorskip("ctd.alignment")
if not hasattr(alignment, "CrossTokenizerCollator"):
    pytest.skip("ctd.alignment.CrossTokenizerCollator has not landed yet", allow_module_level=True)

TRAIN_TEXT = [
    "And God said, Let there be light: and there was light.",
    ":hack: n. 1. Originally, a quick job that produces what is needed, but not well.",
    "Grüße aus Köln: café, naïve. Emoji 🤗 and numbers 12345.",
] * 30


def train_tokenizer(vocab_size: int, *, add_prefix_space: bool) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
    )
    tokenizer.train_from_iterator(TRAIN_TEXT, trainer)
    return tokenizer


@pytest.fixture(scope="module")
def tokenizers_pair() -> tuple[Tokenizer, Tokenizer]:
    return train_tokenizer(300, add_prefix_space=False), train_tokenizer(420, add_prefix_space=True)


def test_batches_from_text_and_jsonl(
    tmp_path: Path, tokenizers_pair: tuple[Tokenizer, Tokenizer]
) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps({"text": t}) for t in TRAIN_TEXT[:12]) + "\n")
    val = tmp_path / "val.txt"
    val.write_text("\n\n".join(TRAIN_TEXT[:3]) + "\n")
    data = CrossTokenizerDataModule(
        [train], [val], batch_size=4, max_teacher_length=48, max_student_length=40
    )
    data.connect(*tokenizers_pair)
    data.setup("fit")
    batches = list(data.train_dataloader())
    assert len(batches) == 3
    for batch in [*batches, *data.val_dataloader()]:
        assert isinstance(batch, alignment.CrossTokenizerBatch)
        assert batch.teacher_input_ids.shape[1] <= 48
        assert batch.student_input_ids.shape[1] <= 40
        assert (batch.num_chunks > 0).all()


@pytest.mark.parametrize("use_suggestion", [False, True])
def test_demo_corpus_split_loses_little_to_truncation(
    tokenizers_pair: tuple[Tokenizer, Tokenizer], use_suggestion: bool
) -> None:
    _, held_out = demo_corpus_paths()
    max_length = 128
    sample = [str(doc) for doc in read_examples(held_out, max_document_bytes=1 << 20)][:100]
    max_document_bytes = (
        suggest_max_document_bytes(
            *tokenizers_pair, sample, max_teacher_length=max_length, max_student_length=max_length
        )
        if use_suggestion
        else 2 * max_length  # too much for tokenizers with 1.2 bytes per token
    )
    data = CrossTokenizerDataModule(
        [held_out],
        [held_out],
        batch_size=32,
        max_teacher_length=max_length,
        max_student_length=max_length,
        max_document_bytes=max_document_bytes,
    )
    data.connect(*tokenizers_pair)
    data.setup("validate")
    text_bytes = sum(
        len(str(doc).encode())
        for doc in read_examples(held_out, max_document_bytes=max_document_bytes)
    )
    chunk_bytes = 0
    metric = BitsPerByte()
    for batch in data.val_dataloader():
        chunk_bytes += int(batch.chunk_num_bytes.sum())
        mask = joint_valid_chunk_mask(
            batch.teacher_chunk_index, batch.student_chunk_index, batch.chunk_num_bytes
        )
        uniform = torch.full(batch.student_input_ids.shape, -2.0)
        metric.update(uniform, batch.student_chunk_index, batch.chunk_num_bytes, None, mask)
    coverage = chunk_bytes / text_bytes
    assert coverage > 0.97 if use_suggestion else coverage < 0.8
    assert 0 < metric.compute().item() < 3.0


def test_chat_jsonl_gives_assistant_loss_masks(
    tmp_path: Path, tokenizers_pair: tuple[Tokenizer, Tokenizer]
) -> None:
    from transformers import PreTrainedTokenizerFast

    template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|endoftext|>{% endfor %}"
    )
    teacher, student = (
        PreTrainedTokenizerFast(
            tokenizer_object=tokenizer, eos_token="<|endoftext|>", chat_template=template
        )
        for tokenizer in tokenizers_pair
    )
    chat = [
        {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": "And God said, Let there be light."},
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps({"messages": chat}) for _ in range(4)) + "\n")
    data = CrossTokenizerDataModule(
        [path], batch_size=2, max_teacher_length=64, max_student_length=64
    )
    data.connect(teacher, student)
    data.setup("fit")
    for batch in data.train_dataloader():
        assert batch.teacher_loss_mask.any(dim=1).all()
        assert batch.student_loss_mask.any(dim=1).all()
        assert not batch.student_loss_mask.all()  # the user turn does not count
