"""`ctd fit` under DDP with 2 CPU processes (gloo) equals one process on the same global batch.

One process trains with batch 4, two DDP ranks with batch 2 each; with a shuffle buffer of 1
the ranks' examples interleave into exactly the one-process batches (example i -> rank i % 2).
ALM + SFT combined by GradMag. Compared: the loss (mean of the ranks' losses), the first step's
gradients after DDP's all-reduce, the weights after two steps, and the validation BPB (bytes
and bits summed over ranks). The shards are disjoint and cover the documents.
FSDP: only what Lightning allows on CPU (it refuses FSDP without a GPU).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ctd.config import ConfigError, FitConfig, TrainerConfig, load_config
from ctd.trainers.builders import build_strategy, check_trainer_settings, is_decoder_layer

HARNESS = Path(__file__).with_name("ddp_harness.py")
NUM_DOCUMENTS = 14


def run(tiny: dict[str, Path], tmp: Path, name: str, *extra: str) -> list[dict]:  # type: ignore[type-arg]
    from test_resume import write_documents

    train_file = tmp / "train.txt"
    if not train_file.exists():
        write_documents(train_file)
    out = tmp / name
    out.mkdir()
    overrides = [
        f"teacher.name_or_path={tiny['teacher']}",
        "student.tokenizer=bytes",
        "losses=[{name: alm}, {name: sft}]",
        f"data.train_files=[{train_file}]",
        f"data.val_files=[{tiny['heldout']}]",
        "data.max_teacher_length=48",
        "data.max_student_length=160",
        "data.max_document_bytes=160",
        "data.shuffle_buffer_size=1",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.limit_val_batches=100",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
        "optim.warmup_steps=1",
        "optim.lr=3e-3",
        f"trainer.default_root_dir={out / 'run'}",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, str(HARNESS), str(out), *overrides]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = sorted(out.glob("rank*.pt"))
    return [torch.load(path, weights_only=True) for path in ranks]


@pytest.mark.slow
def test_two_ddp_processes_equal_one_process_on_the_global_batch(tiny_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (one,) = run(tiny_models, tmp_path, "one", "data.batch_size=4")
    two = run(
        tiny_models, tmp_path, "two", "data.batch_size=2", "trainer.strategy=ddp",
        "trainer.devices=2",
    )  # fmt: skip
    assert [record["world_size"] for record in two] == [2, 2]

    # data: disjoint shards whose interleaving is the one-process order
    rank0, rank1 = two[0]["ids"], two[1]["ids"]
    assert set(rank0).isdisjoint(rank1)
    interleaved = [i for pair in zip(rank0, rank1, strict=True) for i in pair]
    assert interleaved == one["ids"]

    losses = [(a + b) / 2 for a, b in zip(two[0]["losses"], two[1]["losses"], strict=True)]
    assert losses == pytest.approx(one["losses"], rel=1e-5)
    for record in two:
        for name, value in one["gradients"].items():
            torch.testing.assert_close(record["gradients"][name], value, rtol=1e-4, atol=1e-7)
        for name, value in one["weights"].items():
            torch.testing.assert_close(record["weights"][name], value, rtol=1e-4, atol=1e-6)
        for key in ("val/student_bpb", "val/teacher_bpb"):
            assert record["metrics"][key] == pytest.approx(one["metrics"][key], rel=1e-5)


def test_every_document_is_in_exactly_one_training_shard(tmp_path: Path) -> None:
    from test_resume import write_documents

    from ctd.data.datasets import BatchStream, DocumentStream

    path = write_documents(tmp_path / "train.txt")
    seen: list[str] = []
    for rank in range(3):
        stream = DocumentStream(
            [path], max_document_bytes=160, shuffle=True, rank=rank, world_size=3,
            equal_rank_lengths=True, shuffle_buffer_size=4,
        )  # fmt: skip
        seen += [text for batch in BatchStream(stream, 2) for text in batch]  # type: ignore[misc]
    assert len(seen) == len(set(seen)) == NUM_DOCUMENTS - NUM_DOCUMENTS % 3  # 2 dropped


def test_fsdp_wraps_each_decoder_layer_and_needs_a_gpu(tiny_models) -> None:  # type: ignore[no-untyped-def]
    from lightning.pytorch.strategies import FSDPStrategy
    from transformers import AutoModelForCausalLM

    settings = TrainerConfig(strategy="fsdp", activation_checkpointing=True, accelerator="cpu")
    strategy = build_strategy(settings)
    assert isinstance(strategy, FSDPStrategy)
    model = AutoModelForCausalLM.from_pretrained(tiny_models["teacher"])
    wrapped = [name for name, module in model.named_modules() if is_decoder_layer(module)]
    assert wrapped == ["model.layers.0", "model.layers.1"]
    with pytest.raises(ValueError, match="`fsdp` requires a GPU accelerator"):
        check_trainer_settings(settings)
    with pytest.raises(ConfigError, match="activation_checkpointing needs trainer.strategy=fsdp"):
        load_config(FitConfig, overrides=["trainer.activation_checkpointing=true"])
