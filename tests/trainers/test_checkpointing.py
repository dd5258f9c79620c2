"""Atomic checkpoints and exports: a writer SIGKILLed mid-write leaves the previous one loadable."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ctd.config import TrainerConfig
from ctd.trainers.builders import build_trainer
from ctd.trainers.checkpointing import (
    AtomicCheckpointIO,
    RngStatesCallback,
    collect_rng_states,
    set_rng_states,
)

# Writes checkpoint 1, then starts checkpoint 2 with a torch.save that writes half of its bytes
# into the open file, says so, and hangs: the parent SIGKILLs it there.
WRITER = textwrap.dedent(
    """
    import io, sys, time, torch
    from ctd.trainers.checkpointing import AtomicCheckpointIO
    writer, path = AtomicCheckpointIO(), sys.argv[1]
    writer.save_checkpoint({"step": 1, "weight": torch.arange(100_000.0)}, path)
    real_save = torch.save
    def half_then_hang(obj, handle):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        handle.flush()
        print("writing", flush=True)
        time.sleep(120)
    torch.save = half_then_hang
    writer.save_checkpoint({"step": 2, "weight": torch.zeros(100_000)}, path)
    """
)

# The same for an export: the first export completes, the second hangs inside save_pretrained.
EXPORTER = textwrap.dedent(
    """
    import sys, time
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from ctd.models import export_pretrained
    source, out = sys.argv[1], sys.argv[2]
    model = AutoModelForCausalLM.from_pretrained(source)
    tokenizer = AutoTokenizer.from_pretrained(source)
    export_pretrained(model, tokenizer, out)
    def hang(*args, **kwargs):
        print("writing", flush=True)
        time.sleep(120)
    tokenizer.save_pretrained = hang  # the weights are written, the tokenizer never is
    for parameter in model.parameters():
        parameter.data.zero_()
    export_pretrained(model, tokenizer, out)
    """
)


def kill_mid_write(script: str, *args: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "writing"
    finally:
        process.kill()  # SIGKILL
        process.wait(timeout=60)
    assert process.returncode == -9


def test_a_checkpoint_killed_mid_write_leaves_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    kill_mid_write(WRITER, str(path))
    saved = torch.load(path, weights_only=True)
    assert saved["step"] == 1
    torch.testing.assert_close(saved["weight"], torch.arange(100_000.0))
    partial = [p for p in path.parent.iterdir() if p != path]
    assert len(partial) == 1  # the interrupted write
    assert partial[0].name.endswith(".partial")


def test_an_export_killed_mid_write_leaves_the_previous_one(tiny_models, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "export"
    kill_mid_write(EXPORTER, str(tiny_models["teacher"]), str(out))
    model = AutoModelForCausalLM.from_pretrained(out)
    expected = AutoModelForCausalLM.from_pretrained(tiny_models["teacher"])
    for (name, value), original in zip(
        model.state_dict().items(), expected.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(value, original, msg=name)
    assert AutoTokenizer.from_pretrained(out).get_vocab()


def test_build_trainer_writes_atomic_checkpoints_with_rng_states(tmp_path: Path) -> None:
    settings = TrainerConfig(default_root_dir=str(tmp_path), enable_progress_bar=False)
    trainer = build_trainer(settings)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert any(isinstance(callback, RngStatesCallback) for callback in trainer.callbacks)


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    import random

    import numpy as np

    torch.manual_seed(3)
    states = collect_rng_states()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    AtomicCheckpointIO().save_checkpoint({"rng": states}, tmp_path / "rng.ckpt")
    random.random(), np.random.rand(), torch.rand(())  # move every generator on
    set_rng_states(torch.load(tmp_path / "rng.ckpt", weights_only=True)["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


def test_storage_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="storage_options"):
        AtomicCheckpointIO().save_checkpoint({}, tmp_path / "x.ckpt", storage_options={"a": 1})
