"""`CrossTokenizerDataModule`: files -> examples -> aligned teacher/student batches.

Use:
    data = CrossTokenizerDataModule(["train.txt"], ["val.txt"], batch_size=8,
                                    max_teacher_length=512, max_student_length=512)
    data.connect(teacher_tokenizer, student_tokenizer, mode="unconstrained")
    trainer.fit(model, datamodule=data)

Batches are `ctd.alignment.CrossTokenizerBatch`es built by `ctd.alignment.CrossTokenizerCollator`
inside the DataLoader workers. Examples stream from the files (see `ctd.data.datasets`); under
DDP each rank reads its own shard, so Lightning does not add a DistributedSampler.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import _BaseDataLoaderIter

from ctd.data.datasets import BatchStream, DocumentStream
from ctd.data.readers import Example, check_files_exist

Collator = Callable[[list[Example]], Any]


class EpochDataLoader(DataLoader):  # type: ignore[type-arg]
    """A DataLoader over a `BatchStream` that starts each epoch (and a resumed one) in place.

    Each time it starts iterating it calls `dataset.set_epoch` (Lightning calls `set_epoch` only
    on samplers, and an IterableDataset has none), before the workers are started so that they
    receive it (workers are not persistent). It is *stateful* in Lightning's sense
    (`state_dict` / `load_state_dict`, saved in checkpoints by the fit loop): the state is the
    epoch and the batches done in it, read from `position_source` (the trainer's count of
    processed batches, which excludes batches only prefetched); after `load_state_dict` the
    next iteration of that epoch starts at that batch. The workers' base seed comes from a
    generator seeded by `(seed, epoch)`, not from the global RNG, so starting an epoch (or
    resuming one) draws nothing from it.

    Args:
        epoch_source: Returns the epoch to use; without it, the DataLoader counts its epochs.
        position_source: Returns the batches done in the current epoch (for `state_dict`).
        seed: Seed of the workers' base seed.
        **kwargs: Passed to `DataLoader`.
    """

    def __init__(
        self,
        *args: Any,
        epoch_source: Callable[[], int] | None = None,
        position_source: Callable[[], int] | None = None,
        seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.epoch_source = epoch_source
        self.position_source = position_source
        self.seed = seed
        self.epochs_started = 0
        self.epoch = 0
        self.resume_position: tuple[int, int] | None = None  # (epoch, batches done)

    def __iter__(self) -> _BaseDataLoaderIter:
        epoch = self.epoch_source() if self.epoch_source else self.epochs_started
        self.dataset.set_epoch(epoch)  # type: ignore[attr-defined]
        if self.resume_position is not None:
            resume_epoch, batches_done = self.resume_position
            if resume_epoch == epoch:
                self.dataset.start_batch = batches_done  # type: ignore[attr-defined]
            self.resume_position = None
        self.epoch = epoch
        self.epochs_started += 1
        self.generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return super().__iter__()

    def state_dict(self) -> dict[str, int]:
        """The epoch and the batches done in it (what a resumed run skips)."""
        if self.position_source is None:
            raise RuntimeError("this EpochDataLoader has no position_source to save")
        return {"epoch": self.epoch, "batches_done": int(self.position_source())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Start the next iteration of `state["epoch"]` at batch `state["batches_done"]`."""
        self.resume_position = (int(state["epoch"]), int(state["batches_done"]))


class CrossTokenizerDataModule(L.LightningDataModule):
    """Streams text/JSONL/parquet files into `CrossTokenizerBatch`es for a teacher and a student.

    Args:
        train_files: Training files (`.txt`/`.md`/`.rst`, `.jsonl`, `.parquet`; `.gz` allowed).
        val_files: Validation files; empty with `val_fraction > 0` holds out training examples.
        batch_size: Examples per batch (per process).
        max_teacher_length: Teacher context in tokens (the collator truncates to it).
        max_student_length: Student context in tokens.
        seed: Seed of the shuffling and of the `val_fraction` split.
        num_workers: DataLoader worker processes per rank (tokenization runs in them).
        max_document_bytes: Longer texts are split into pieces of at most this many UTF-8
            bytes; keep it below the context (about 3-4 bytes per token for English) so that
            little is truncated.
        val_fraction: Fraction of the training examples held out for validation when
            `val_files` is empty (a fixed hash of each example's place, so stable across epochs).
        shuffle_buffer_size: Examples per shuffle buffer (one per rank and worker).

    Raises:
        FileNotFoundError: Naming a file that does not exist.
    """

    def __init__(
        self,
        train_files: Sequence[str | Path],
        val_files: Sequence[str | Path] = (),
        *,
        batch_size: int,
        max_teacher_length: int,
        max_student_length: int,
        seed: int = 0,
        num_workers: int = 0,
        max_document_bytes: int = 2048,
        val_fraction: float = 0.0,
        shuffle_buffer_size: int = 4096,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.train_files = check_files_exist(train_files)
        self.val_files = check_files_exist(val_files)
        self.batch_size = batch_size
        self.max_teacher_length = max_teacher_length
        self.max_student_length = max_student_length
        self.seed = seed
        self.num_workers = num_workers
        self.max_document_bytes = max_document_bytes
        self.val_fraction = val_fraction if not self.val_files else 0.0
        self.shuffle_buffer_size = shuffle_buffer_size
        self.collator: Collator | None = None
        self.train_dataset: DocumentStream | None = None
        self.val_dataset: DocumentStream | None = None

    def connect(
        self, teacher_tokenizer: Any, student_tokenizer: Any, **collator_kwargs: Any
    ) -> None:
        """Build the `CrossTokenizerCollator` for the two tokenizers.

        Args:
            teacher_tokenizer: The teacher's tokenizer (as `CrossTokenizerCollator` takes it).
            student_tokenizer: The student's tokenizer.
            **collator_kwargs: More `CrossTokenizerCollator` arguments, such as `mode`.
        """
        from ctd.alignment import CrossTokenizerCollator

        self.collator = CrossTokenizerCollator(
            teacher_tokenizer,
            student_tokenizer,
            max_teacher_length=self.max_teacher_length,
            max_student_length=self.max_student_length,
            **collator_kwargs,
        )

    def connect_collator(self, collator: Collator) -> None:
        """Use a ready collator (any callable from a list of examples to a batch)."""
        self.collator = collator

    def _rank_and_world_size(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _stream(self, files: list[Path], *, split: str, shuffle: bool) -> DocumentStream:
        rank, world_size = self._rank_and_world_size()
        return DocumentStream(
            files,
            max_document_bytes=self.max_document_bytes,
            shuffle=shuffle,
            seed=self.seed,
            shuffle_buffer_size=self.shuffle_buffer_size,
            rank=rank,
            world_size=world_size,
            equal_rank_lengths=shuffle,  # training: equal steps on every rank
            held_out_fraction=self.val_fraction,
            split=split,
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets and reject empty ones before training starts.

        Raises:
            ValueError: Naming the files of a split that holds no example (or fewer examples
                than there are processes).
        """
        train_split = "train" if self.val_fraction > 0 else "all"
        self.train_dataset = self._stream(self.train_files, split=train_split, shuffle=True)
        _check_not_empty(self.train_dataset, "training")
        if self.val_files:
            self.val_dataset = self._stream(self.val_files, split="all", shuffle=False)
        elif self.val_fraction > 0:
            self.val_dataset = self._stream(self.train_files, split="held_out", shuffle=False)
        if self.val_dataset is not None:
            _check_not_empty(self.val_dataset, "validation")

    def _dataloader(self, dataset: DocumentStream | None, name: str) -> EpochDataLoader:
        if self.collator is None:
            raise RuntimeError("call connect(teacher_tokenizer, student_tokenizer) first")
        if dataset is None:
            raise RuntimeError(f"no {name} data: call setup() (and give val_files)")
        trainer = self.trainer
        return EpochDataLoader(
            BatchStream(dataset, self.batch_size),
            batch_size=None,  # the BatchStream batches
            collate_fn=self.collator,
            num_workers=self.num_workers,
            epoch_source=(lambda: trainer.current_epoch) if trainer is not None else None,
            position_source=_processed_batches(trainer) if name == "training" else None,
            seed=self.seed,
        )

    def describe_training_batch(self, epoch: int, batch_index: int) -> str:
        """The first document of training batch `batch_index` of `epoch` on this rank.

        Replays the epoch's stream up to the batch (no tokenization): for error messages.
        """
        if self.train_dataset is None:
            return "unknown (no training data set up)"
        stream = copy.copy(self.train_dataset)
        batches = BatchStream(stream, self.batch_size)
        batches.set_epoch(epoch)
        place = batches.first_place_of_batch(batch_index)
        if place is None:
            return f"unknown (epoch {epoch} has no batch {batch_index})"
        return stream.describe_place(place)

    def train_dataloader(self) -> EpochDataLoader:
        """Shuffled training batches (a new order every epoch)."""
        return self._dataloader(self.train_dataset, "training")

    def val_dataloader(self) -> EpochDataLoader | list[Any]:
        """Validation batches in file order; an empty list when there is no validation data."""
        if self.val_dataset is None and not self.val_files and self.val_fraction == 0:
            return []
        return self._dataloader(self.val_dataset, "validation")


def _processed_batches(trainer: Any) -> Callable[[], int] | None:
    """Batches the trainer has processed in its current epoch (prefetched ones excluded)."""
    if trainer is None:
        return None
    return lambda: int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)


def _check_not_empty(dataset: DocumentStream, name: str) -> None:
    found = len(dataset.first_examples(dataset.world_size))
    files = ", ".join(map(str, dataset.files)) or "(no files)"
    if found == 0:
        raise ValueError(f"the {name} data is empty: no example in {files}")
    if dataset.equal_rank_lengths and found < dataset.world_size:
        raise ValueError(
            f"the {name} data has {found} examples, fewer than the {dataset.world_size} "
            f"processes: {files}"
        )
