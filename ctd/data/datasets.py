"""A streaming dataset over text/JSONL/parquet files with seeded shuffling and exact sharding.

Sharding: all files form one example stream (file order shuffled per epoch when shuffling).
Example `i` of that stream belongs to rank `i % world_size`; inside a rank, the rank's examples
go round-robin to the DataLoader workers. Every shard reads the whole stream and keeps its own
examples, so the shards are disjoint and their union is the stream. With
`equal_rank_lengths=True` (training under DDP) the last incomplete round of `world_size`
examples is dropped, so every rank yields the same number of examples (at most
`world_size - 1` examples per epoch are left out) and no rank waits on a collective forever.

Shuffling: a shuffle buffer per shard, seeded from `(seed, epoch, rank, worker)`; the same seed
and epoch give the same order, another epoch or seed gives another. Call `set_epoch` before
each epoch (`CrossTokenizerDataModule` does it through its DataLoader).

Batches (`BatchStream`, what `CrossTokenizerDataModule` trains on): the rank's shuffled stream is
cut into batches *before* the DataLoader workers split it, batch `j` going to worker
`j % num_workers`. A batch's documents therefore do not depend on the number of workers, and a
position in an epoch is one number, the batches done: resuming at batch `n` replays the
seeded stream (reading and shuffling, no tokenization) past its first `n` batches, which
restores the file order and the shuffle buffer exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TypeVar

from torch.utils.data import IterableDataset, get_worker_info

from ctd.data.readers import Example, check_files_exist, read_examples

T = TypeVar("T")
Place = tuple[int, int]
"""Where an example comes from: (file position in `files`, example position in that file)."""
_HASH_MULTIPLIER = 0x9E3779B97F4A7C15
_HASH_MASK = (1 << 64) - 1


def take_shard(
    examples: Iterable[T],
    *,
    rank: int,
    world_size: int,
    worker_id: int,
    num_workers: int,
    equal_rank_lengths: bool,
) -> Iterator[T]:
    """Keep the examples of one (rank, worker) shard from a stream that every shard sees.

    Args:
        examples: The whole stream, in the same order for every shard.
        rank: This process's rank, in `[0, world_size)`.
        world_size: Number of processes.
        worker_id: This DataLoader worker's id, in `[0, num_workers)`.
        num_workers: Number of DataLoader workers per process (1 without workers).
        equal_rank_lengths: Drop the last incomplete round of `world_size` examples.
    """
    if not (0 <= rank < world_size and 0 <= worker_id < num_workers):
        raise ValueError(f"bad shard: rank {rank}/{world_size}, worker {worker_id}/{num_workers}")
    rank_position = 0  # index of the next example among this rank's examples
    held: list[T] = []
    for index, example in enumerate(examples):
        if index % world_size == rank:
            held.append(example)
        round_is_complete = index % world_size == world_size - 1
        if held and (round_is_complete or not equal_rank_lengths):
            if rank_position % num_workers == worker_id:
                yield held[0]
            held.clear()
            rank_position += 1


def shuffle_with_buffer(
    examples: Iterable[T], *, buffer_size: int, rng: random.Random
) -> Iterator[T]:
    """Yield `examples` in a random order drawn from a buffer of `buffer_size` examples."""
    buffer: list[T] = []
    for example in examples:
        if len(buffer) < buffer_size:
            buffer.append(example)
            continue
        position = rng.randrange(buffer_size)
        yield buffer[position]
        buffer[position] = example
    rng.shuffle(buffer)
    yield from buffer


def batches_of(examples: Iterable[T], batch_size: int) -> Iterator[list[T]]:
    """Consecutive lists of `batch_size` examples; the last one may be shorter."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    iterator = iter(examples)
    while batch := list(islice(iterator, batch_size)):
        yield batch


def is_held_out(seed: int, file_position: int, example_position: int, fraction: float) -> bool:
    """Whether an example belongs to the held-out split: a fixed hash of its place, not of order."""
    key = (seed * 1_000_003 + file_position) * 1_000_000_007 + example_position
    mixed = ((key & _HASH_MASK) * _HASH_MULTIPLIER) & _HASH_MASK
    mixed ^= mixed >> 29
    mixed = (mixed * 0xBF58476D1CE4E5B9) & _HASH_MASK
    mixed ^= mixed >> 32
    return mixed / 2.0**64 < fraction


class DocumentStream(IterableDataset[Example]):
    """Examples streamed from files, shuffled and sharded across ranks and DataLoader workers.

    Args:
        files: Text, JSONL or parquet files (see `ctd.data.readers`).
        max_document_bytes: Texts longer than this many UTF-8 bytes are split into pieces.
        shuffle: Shuffle the file order and the examples (with a buffer); off keeps file order.
        seed: Seed of the shuffling and of the held-out split.
        shuffle_buffer_size: Examples held in the shuffle buffer of each shard.
        rank: This process's rank; `world_size` the number of processes.
        equal_rank_lengths: Give every rank the same number of examples (see module docstring).
        held_out_fraction: With `split`, the fraction of examples in the held-out split.
        split: `"all"`, `"train"` (examples not held out) or `"held_out"`.

    Raises:
        FileNotFoundError: Naming a file that does not exist.
    """

    def __init__(
        self,
        files: Sequence[str | Path],
        *,
        max_document_bytes: int,
        shuffle: bool = False,
        seed: int = 0,
        shuffle_buffer_size: int = 4096,
        rank: int = 0,
        world_size: int = 1,
        equal_rank_lengths: bool = False,
        held_out_fraction: float = 0.0,
        split: str = "all",
    ) -> None:
        super().__init__()
        if split not in ("all", "train", "held_out"):
            raise ValueError(f"split must be 'all', 'train' or 'held_out', got {split!r}")
        self.files = check_files_exist(files)
        self.max_document_bytes = max_document_bytes
        self.shuffle = shuffle
        self.seed = seed
        self.shuffle_buffer_size = shuffle_buffer_size
        self.rank = rank
        self.world_size = world_size
        self.equal_rank_lengths = equal_rank_lengths
        self.held_out_fraction = held_out_fraction
        self.split = split
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffling order of `epoch`."""
        self.epoch = epoch

    def iter_all_examples(self) -> Iterator[Example]:
        """The whole stream of this split, before sharding, in this epoch's file order."""
        return (example for _, example in self.iter_placed_examples())

    def iter_placed_examples(self) -> Iterator[tuple[Place, Example]]:
        """`iter_all_examples` with each example's place (file position, example position)."""
        file_positions = list(range(len(self.files)))
        if self.shuffle:
            random.Random(f"files-{self.seed}-{self.epoch}").shuffle(file_positions)
        for file_position in file_positions:
            examples = read_examples(
                self.files[file_position], max_document_bytes=self.max_document_bytes
            )
            for example_position, example in enumerate(examples):
                if self.split in ("all", self._split_of(file_position, example_position)):
                    yield (file_position, example_position), example

    def describe_place(self, place: Place) -> str:
        """A human-readable name of the example at `place`, e.g. `train.txt example 17`."""
        file_position, example_position = place
        return f"{self.files[file_position]} example {example_position}"

    def _split_of(self, file_position: int, example_position: int) -> str:
        held = is_held_out(self.seed, file_position, example_position, self.held_out_fraction)
        return "held_out" if held else "train"

    def first_examples(self, count: int) -> list[Example]:
        """Up to `count` examples of the whole stream (used to reject empty datasets early)."""
        return list(islice(self.iter_all_examples(), count))

    def __iter__(self) -> Iterator[Example]:
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        return (example for _, example in self.placed_shard(worker_id, num_workers))

    def placed_shard(
        self, worker_id: int = 0, num_workers: int = 1
    ) -> Iterator[tuple[Place, Example]]:
        """This rank's (and worker's) examples with their places, shuffled when shuffling."""
        shard = take_shard(
            self.iter_placed_examples(),
            rank=self.rank,
            world_size=self.world_size,
            worker_id=worker_id,
            num_workers=num_workers,
            equal_rank_lengths=self.equal_rank_lengths,
        )
        if not self.shuffle:
            return shard
        rng = random.Random(f"examples-{self.seed}-{self.epoch}-{self.rank}-{worker_id}")
        return shuffle_with_buffer(shard, buffer_size=self.shuffle_buffer_size, rng=rng)


class BatchStream(IterableDataset[list[Example]]):
    """Batches of one rank's `DocumentStream`, split over DataLoader workers batch by batch.

    Batch `j` of the epoch (after the first `start_batch`, which are skipped) goes to worker
    `j % num_workers`, so a DataLoader (`batch_size=None`, which takes its workers in turn)
    yields the batches in the same order for any number of workers (see the module docstring).

    Args:
        stream: The rank's examples (its `rank`, `world_size`, seed and shuffling).
        batch_size: Examples per batch; the epoch's last batch may be shorter.
    """

    def __init__(self, stream: DocumentStream, batch_size: int) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.stream = stream
        self.batch_size = batch_size
        self.start_batch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffling order of `epoch` (and start it at its first batch)."""
        self.stream.set_epoch(epoch)
        self.start_batch = 0

    def placed_batches(self) -> Iterator[list[tuple[Place, Example]]]:
        """Every batch of this epoch for this rank, from the first, with the examples' places."""
        return batches_of(self.stream.placed_shard(), self.batch_size)

    def first_place_of_batch(self, batch_index: int) -> Place | None:
        """Place of the first example of this epoch's batch `batch_index` (None: no such batch).

        Replays the epoch's stream up to that batch (no tokenization).
        """
        batch = next(islice(self.placed_batches(), batch_index, None), None)
        return batch[0][0] if batch else None

    def __iter__(self) -> Iterator[list[Example]]:
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        remaining = islice(self.placed_batches(), self.start_batch, None)
        for index, batch in enumerate(remaining):
            if index % num_workers == worker_id:
                yield [example for _, example in batch]
