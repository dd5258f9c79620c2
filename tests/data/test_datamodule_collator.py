"""End to end: files -> CrossTokenizerDataModule -> the real CrossTokenizerCollator -> batches."""

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from ctd.data import CrossTokenizerDataModule, demo_corpus_paths, read_examples
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


def test_demo_corpus_split_loses_little_to_truncation(
    tokenizers_pair: tuple[Tokenizer, Tokenizer],
) -> None:
    _, held_out = demo_corpus_paths()
    max_length = 128
    data = CrossTokenizerDataModule(
        [held_out],
        [held_out],
        batch_size=16,
        max_teacher_length=max_length,
        max_student_length=max_length,
        max_document_bytes=2 * max_length,  # tiny tokenizers: about 2.5 bytes per token
    )
    data.connect(*tokenizers_pair)
    data.setup("validate")
    text_bytes = sum(
        len(str(doc).encode()) for doc in read_examples(held_out, max_document_bytes=256)
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
    assert chunk_bytes / text_bytes > 0.9
    assert 0 < metric.compute().item() < 3.0
