"""A new task is a schema + a LightningModule + one registry line: `ctd fit` runs it unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ctd import cli
from ctd.config import RunConfig
from ctd.trainers import registry
from ctd.trainers.task import PreparedRun, Task


@dataclass
class ToyConfig(RunConfig):
    """A regression task that exists only in this test."""

    target_slope: float = 3.0


class ToyModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.slope = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = ((self.slope * x - y) ** 2).mean()
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


class ToyData(L.LightningDataModule):
    def __init__(self, slope: float) -> None:
        super().__init__()
        x = torch.linspace(-1, 1, 64)
        self.dataset = TensorDataset(x, slope * x)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=16, shuffle=False)


def _setup_toy(config: ToyConfig) -> PreparedRun:
    module = ToyModule()

    def export(folder: str | Path) -> Path:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        (path / "slope.txt").write_text(f"{module.slope.item():.4f}")
        return path

    return PreparedRun(module, ToyData(config.target_slope), export)


def _check_toy(config: ToyConfig) -> None:
    if config.target_slope == 0:
        raise ValueError("target_slope: 0 trains nothing")


@pytest.fixture
def toy_task(monkeypatch: pytest.MonkeyPatch) -> None:
    task = Task(ToyConfig, _setup_toy, _check_toy, "fit a slope")
    monkeypatch.setitem(registry.TASKS, "toy", task)


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "task=toy",
        "trainer.max_steps=40",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
        f"trainer.default_root_dir={tmp_path / 'run'}",
        f"export_dir={tmp_path / 'export'}",
        *extra,
    ]


def test_a_registered_task_trains_and_exports_through_ctd_fit(toy_task, tmp_path, capsys) -> None:
    assert cli.main(_args(tmp_path, "target_slope=2.5")) == 0
    assert abs(float((tmp_path / "export" / "slope.txt").read_text()) - 2.5) < 0.05
    assert (tmp_path / "run" / "config.yaml").read_text().count("target_slope: 2.5") == 1
    assert "exported:" in capsys.readouterr().out


def test_the_task_schema_rejects_keys_of_other_tasks(toy_task, tmp_path, capsys) -> None:
    assert cli.main(_args(tmp_path, "losses=[{name: alm}]")) == 2
    assert "losses" in capsys.readouterr().err


def test_the_task_check_runs_at_load_time(toy_task, tmp_path, capsys) -> None:
    assert cli.main(_args(tmp_path, "target_slope=0")) == 2
    assert capsys.readouterr().err.strip() == "ctd fit: error: target_slope: 0 trains nothing"


def test_an_unknown_task_suggests_the_closest(tmp_path, capsys) -> None:
    assert cli.main(["fit", "task=distil"]) == 2
    assert "did you mean 'distill'" in capsys.readouterr().err
