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
        file_positions = list(range(len(self.files)))
        if self.shuffle:
            random.Random(f"files-{self.seed}-{self.epoch}").shuffle(file_positions)
        for file_position in file_positions:
            examples = read_examples(
                self.files[file_position], max_document_bytes=self.max_document_bytes
            )
            for example_position, example in enumerate(examples):
                if self.split in ("all", self._split_of(file_position, example_position)):
                    yield example

    def _split_of(self, file_position: int, example_position: int) -> str:
        held = is_held_out(self.seed, file_position, example_position, self.held_out_fraction)
        return "held_out" if held else "train"

    def first_examples(self, count: int) -> list[Example]:
        """Up to `count` examples of the whole stream (used to reject empty datasets early)."""
        return list(islice(self.iter_all_examples(), count))

    def __iter__(self) -> Iterator[Example]:
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        shard = take_shard(
            self.iter_all_examples(),
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
