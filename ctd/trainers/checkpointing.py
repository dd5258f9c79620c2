"""Checkpoints that survive a crash and resume a run exactly.

* `AtomicCheckpointIO`: a Lightning CheckpointIO plugin that writes each checkpoint to a
  temporary file in the same folder, fsyncs it, and `os.replace`s it onto its name, so a crash
  (SIGKILL, power loss) while writing leaves the previous checkpoint of that name intact.
* `RngStatesCallback`: saves the global RNG states (Python, NumPy, torch, CUDA) in every
  checkpoint and restores them just before the first batch of a resumed run, so anything random
  in a training step (dropout, sampling) continues as in an uninterrupted run.

With `CrossTokenizerDataModule`'s stateful DataLoader (the data position) and Lightning's own
state (step, epoch, optimizer, LR schedule, loop progress), this is everything that decides the
weights of a `ctd fit` run: a resumed run ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ctd.models.atomic import fsync_directory, partial_path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` to `path` through a temporary file, fsync and `os.replace`.

    A crash at any moment leaves either the old file or the new one at `path`, never part of one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(target)
    try:
        with temporary.open("wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)
    return target


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's `TorchCheckpointIO`, with saves that are atomic (`atomic_torch_save`).

    Lightning's own save writes the bytes in place, so a crash mid-write truncates the file
    (and `last.ckpt` is rewritten at every checkpoint).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write `checkpoint` to `path` atomically."""
        if storage_options is not None:
            raise TypeError(
                "AtomicCheckpointIO takes no storage_options; got "
                f"{storage_options!r} (write a CheckpointIO plugin for them)"
            )
        atomic_torch_save(checkpoint, path)


def collect_rng_states() -> dict[str, Any]:
    """The global RNG states of Python, NumPy, torch and CUDA, as plain types and tensors.

    (NumPy's key array is stored as a tensor, so that `torch.load(weights_only=True)` reads it.)
    """
    state: Any = np.random.get_state()
    name, keys, position, has_gauss, cached_gaussian = state
    return {
        "python": random.getstate(),
        "numpy": (
            str(name),
            torch.from_numpy(keys.astype(np.int64)),
            int(position),
            int(has_gauss),
            float(cached_gaussian),
        ),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `collect_rng_states` returned."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state(
        (name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian)
    )
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RngStatesCallback(L.Callback):
    """Save the global RNG states in checkpoints; restore them at the first resumed batch.

    Restoring at `on_train_batch_start` rather than at load time keeps whatever Lightning does
    between loading and the first batch (sanity validation, starting workers) from moving them.
    Under DDP the checkpoint holds rank 0's states and every rank resumes from them (with one
    seed on every rank they are the same).
    """

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return {"rng": collect_rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: D102
        self.pending = state_dict["rng"]

    def on_train_batch_start(  # noqa: D102
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.pending is not None:
            set_rng_states(self.pending)
            self.pending = None
