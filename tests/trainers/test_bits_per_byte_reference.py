"""Validation bits per byte against an independent reference: plain HF logits, token by token."""

from __future__ import annotations

import math

import pytest
import torch

from ctd.config import FitConfig, load_config
from ctd.trainers.builders import build_datamodule, build_trainer
from ctd.trainers.transfer import build_module, load_models


def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's printable-character -> byte table, written out independently of ctd."""
    printable = list(range(ord("!"), ord("~") + 1))
    printable += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[chr(byte)] = byte
        else:
            table[chr(256 + extra)] = byte
            extra += 1
    return table


def test_student_bpb_equals_hf_loss_when_both_sides_share_a_model(tiny_models, tmp_path) -> None:
    config = load_config(
        FitConfig,
        overrides=[
            "mode=distill",
            f"teacher.name_or_path={tiny_models['teacher']}",
            f"student.name_or_path={tiny_models['teacher']}",
            f"data.train_files=[{tiny_models['train']}]",
            f"data.val_files=[{tiny_models['heldout']}]",
            "data.batch_size=3",
            "data.max_teacher_length=64",
            "data.max_student_length=64",
            "data.max_document_bytes=120",
            "trainer.limit_val_batches=2",
            "trainer.enable_progress_bar=false",
            f"trainer.default_root_dir={tmp_path}",
        ],
    )
    models = load_models(config)
    datamodule = build_datamodule(
        config.data, models.teacher_tokenizer, models.student_tokenizer, seed=config.seed
    )
    module = build_module(config, models)
    metrics = build_trainer(config.trainer, logger=False).validate(module, datamodule=datamodule)[0]

    byte_of = _gpt2_byte_decoder()
    tokenizer = models.student_tokenizer
    special_ids = set(tokenizer.all_special_ids)
    model = models.student.eval()
    nll_nats, num_bytes = 0.0, 0
    for batch_index, batch in enumerate(datamodule.val_dataloader()):
        if batch_index == 2:
            break
        for row in range(batch.student_input_ids.shape[0]):
            length = int(batch.student_attention_mask[row].sum())
            ids = batch.student_input_ids[row, :length]
            with torch.no_grad():
                logits = model(ids[None]).logits[0].double()  # (T, V)
            logprobs = torch.log_softmax(logits, -1)
            for position in range(1, length):
                token_id = int(ids[position])
                if token_id in special_ids or not bool(batch.student_loss_mask[row, position]):
                    continue
                token = tokenizer.convert_ids_to_tokens(token_id)
                nll_nats -= float(logprobs[position - 1, token_id])
                num_bytes += len(token)  # one printable character per byte
                assert all(character in byte_of for character in token)
    reference = nll_nats / math.log(2) / num_bytes
    assert metrics["val/student_bpb"] == pytest.approx(reference, rel=1e-4)
    assert metrics["val/teacher_bpb"] == pytest.approx(reference, rel=1e-4)
