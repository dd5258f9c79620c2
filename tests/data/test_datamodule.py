"""CrossTokenizerDataModule with a stand-in collator: splits, epochs, ranks, workers, errors."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch

from ctd.data import CrossTokenizerDataModule


def stand_in_collator(examples: list[Any]) -> list[Any]:
    return list(examples)


def write_docs(path: Path, docs: list[str]) -> Path:
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    train = write_docs(tmp_path / "train.txt", [f"train document {i}" for i in range(40)])
    val = write_docs(tmp_path / "val.txt", [f"val document {i}" for i in range(9)])
    return train, val


def make(train: Path, val: Path | None, **kwargs: Any) -> CrossTokenizerDataModule:
    options: dict[str, Any] = {"batch_size": 4, "max_teacher_length": 32, "max_student_length": 32}
    data = CrossTokenizerDataModule([train], [val] if val else [], **{**options, **kwargs})
    data.connect_collator(stand_in_collator)
    return data


def flatten(loader: Any) -> list[str]:
    return [example for batch in loader for example in batch]


def test_epochs_cover_everything_in_new_orders(files: tuple[Path, Path]) -> None:
    data = make(*files, shuffle_buffer_size=16)
    data.setup("fit")
    loader = data.train_dataloader()
    epochs = [flatten(loader) for _ in range(3)]
    expected = sorted(f"train document {i}" for i in range(40))
    assert all(sorted(epoch) == expected for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    again = make(*files, shuffle_buffer_size=16)
    again.setup("fit")
    assert flatten(again.train_dataloader()) == epochs[0]
    assert flatten(data.val_dataloader()) == [f"val document {i}" for i in range(9)]
    assert len(next(iter(loader))) == 4


def test_workers_and_ranks_share_the_data_without_duplicates(files: tuple[Path, Path]) -> None:
    seen: list[str] = []
    for rank in range(2):
        data = make(*files, num_workers=2)
        data.trainer = SimpleNamespace(global_rank=rank, world_size=2, current_epoch=0)  # type: ignore[assignment]
        data.setup("fit")
        seen += flatten(data.train_dataloader())
    assert sorted(seen) == sorted(f"train document {i}" for i in range(40))


def test_val_fraction_holds_out_training_documents(files: tuple[Path, Path]) -> None:
    data = make(files[0], None, val_fraction=0.3)
    data.setup("fit")
    train, val = set(flatten(data.train_dataloader())), set(flatten(data.val_dataloader()))
    assert train.isdisjoint(val)
    assert train | val == {f"train document {i}" for i in range(40)}
    assert val


def test_no_validation_data_gives_no_val_loader(files: tuple[Path, Path]) -> None:
    data = make(files[0], None)
    data.setup("fit")
    assert data.val_dataloader() == []


def test_empty_and_missing_files_fail_before_training(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    empty = write_docs(tmp_path / "empty.txt", ["", "   "])
    with pytest.raises(ValueError, match=r"training data is empty: no example in .*empty\.txt"):
        make(empty, files[1]).setup("fit")
    with pytest.raises(ValueError, match=r"validation data is empty: .*empty\.txt"):
        make(files[0], empty).setup("fit")
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        make(tmp_path / "missing.jsonl", files[1])
    tiny = write_docs(tmp_path / "tiny.txt", ["only one"])
    data = make(tiny, None)
    data.trainer = SimpleNamespace(global_rank=0, world_size=2, current_epoch=0)  # type: ignore[assignment]
    with pytest.raises(ValueError, match="fewer than the 2 processes"):
        data.setup("fit")


def test_dataloader_needs_connect(files: tuple[Path, Path]) -> None:
    data = CrossTokenizerDataModule(
        [files[0]], batch_size=2, max_teacher_length=8, max_student_length=8
    )
    data.setup("fit")
    with pytest.raises(RuntimeError, match="connect"):
        data.train_dataloader()


class RecordingModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.batches: list[tuple[int, list[str]]] = []

    def training_step(self, batch: list[str], batch_idx: int) -> torch.Tensor:
        self.batches.append((self.current_epoch, batch))
        return self.weight * 0.0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.slow
def test_lightning_fit_reshuffles_every_epoch(files: tuple[Path, Path]) -> None:
    data = make(files[0], None, batch_size=5, shuffle_buffer_size=64)
    model = RecordingModule()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    epochs = [[x for epoch, batch in model.batches if epoch == e for x in batch] for e in (0, 1)]
    assert (
        sorted(epochs[0]) == sorted(epochs[1]) == sorted(f"train document {i}" for i in range(40))
    )
    assert epochs[0] != epochs[1]


def test_batches_do_not_depend_on_workers_and_resume_in_place(files: tuple[Path, Path]) -> None:
    batches = {}
    for workers in (0, 1, 3):
        data = make(*files, num_workers=workers, shuffle_buffer_size=8)
        data.setup("fit")
        batches[workers] = list(data.train_dataloader())
    assert batches[0] == batches[1] == batches[3]
    assert sum(len(batch) for batch in batches[0]) == 40

    resumed = make(*files, num_workers=2, shuffle_buffer_size=8)
    resumed.trainer = SimpleNamespace(global_rank=0, world_size=1, current_epoch=0)  # type: ignore[assignment]
    resumed.setup("fit")
    loader = resumed.train_dataloader()
    loader.load_state_dict({"epoch": 0, "batches_done": 3})
    assert list(loader) == batches[0][3:]  # the shuffle buffer replayed past 3 batches
    assert list(loader) == batches[0]  # the next iteration starts the epoch afresh
    loader.load_state_dict({"epoch": 5, "batches_done": 3})  # another epoch: ignored
    assert list(loader) == batches[0]
