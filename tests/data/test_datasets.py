"""Sharding across ranks and workers, seeded shuffling and held-out splits of `DocumentStream`."""

from collections import Counter
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from ctd.data.datasets import DocumentStream, take_shard


def write_corpus(directory: Path, num_files: int = 3, docs_per_file: int = 17) -> list[Path]:
    paths = []
    for file_number in range(num_files):
        path = directory / f"part{file_number}.txt"
        docs = [f"doc {file_number}-{doc}" for doc in range(docs_per_file + file_number)]
        path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def every_doc(paths: list[Path]) -> list[str]:
    return [doc for path in paths for doc in path.read_text().strip().split("\n\n")]


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("num_workers", [1, 2, 4])
@pytest.mark.parametrize("num_examples", [0, 1, 5, 12, 13])
def test_shards_partition_the_stream(world_size: int, num_workers: int, num_examples: int) -> None:
    stream = list(range(num_examples))
    shards = {
        (rank, worker): list(
            take_shard(
                stream,
                rank=rank,
                world_size=world_size,
                worker_id=worker,
                num_workers=num_workers,
                equal_rank_lengths=False,
            )
        )
        for rank in range(world_size)
        for worker in range(num_workers)
    }
    union = Counter(x for shard in shards.values() for x in shard)
    assert union == Counter(stream)


@pytest.mark.parametrize(("world_size", "num_workers"), [(2, 1), (3, 2), (4, 3)])
def test_equal_rank_lengths_drops_only_the_last_round(world_size: int, num_workers: int) -> None:
    stream = list(range(23))
    per_rank: dict[int, list[int]] = {}
    for rank in range(world_size):
        per_rank[rank] = []
        for worker in range(num_workers):
            per_rank[rank] += take_shard(
                stream,
                rank=rank,
                world_size=world_size,
                worker_id=worker,
                num_workers=num_workers,
                equal_rank_lengths=True,
            )
    kept = sorted(x for items in per_rank.values() for x in items)
    full_rounds = len(stream) // world_size
    assert kept == stream[: full_rounds * world_size]  # no duplicate, only the tail is lost
    assert {len(items) for items in per_rank.values()} == {full_rounds}


def run_loader(dataset: DocumentStream, num_workers: int) -> list[str]:
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    return list(loader)


@pytest.mark.parametrize("shuffle", [False, True])
def test_ranks_and_real_workers_cover_every_document_once(tmp_path: Path, shuffle: bool) -> None:
    paths = write_corpus(tmp_path)
    seen: list[str] = []
    for rank in range(2):
        dataset = DocumentStream(
            paths, max_document_bytes=64, shuffle=shuffle, seed=1, rank=rank, world_size=2
        )
        seen += run_loader(dataset, num_workers=2)
    assert sorted(seen) == sorted(every_doc(paths))


def test_shuffle_is_seeded_and_changes_with_epoch_and_seed(tmp_path: Path) -> None:
    paths = write_corpus(tmp_path)

    def order(seed: int, epoch: int) -> list[str]:
        dataset = DocumentStream(
            paths, max_document_bytes=64, shuffle=True, seed=seed, shuffle_buffer_size=8
        )
        dataset.set_epoch(epoch)
        return list(dataset)

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)
    assert sorted(order(0, 1)) == sorted(every_doc(paths))
    unshuffled = list(DocumentStream(paths, max_document_bytes=64))
    assert unshuffled == every_doc(paths)


def test_held_out_split_is_disjoint_stable_and_complete(tmp_path: Path) -> None:
    paths = write_corpus(tmp_path, num_files=2, docs_per_file=200)

    def split(name: str, epoch: int = 0) -> list[str]:
        dataset = DocumentStream(
            paths,
            max_document_bytes=64,
            shuffle=True,
            seed=3,
            held_out_fraction=0.25,
            split=name,
        )
        dataset.set_epoch(epoch)
        return sorted(dataset)

    train, held_out = split("train"), split("held_out")
    assert not set(train) & set(held_out)
    assert sorted(train + held_out) == sorted(every_doc(paths))
    assert 0.15 < len(held_out) / (len(train) + len(held_out)) < 0.35
    assert split("held_out", epoch=5) == held_out


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.jsonl"):
        DocumentStream([tmp_path / "absent.jsonl"], max_document_bytes=64)
