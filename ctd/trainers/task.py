"""What a task is: a schema, a set-up function, and its loss table (see `registry.TASKS`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L

from ctd.config import RunConfig


@dataclass
class PreparedRun:
    """Everything a task's set-up built, ready for `Trainer.fit`.

    Args:
        module: the task's LightningModule.
        datamodule: its data.
        export: writes the trained model (and tokenizer) to a folder, returns the folder.
        report: facts worth printing before training (e.g. how embeddings were initialised).
    """

    module: L.LightningModule
    datamodule: L.LightningDataModule
    export: Callable[[str | Path], Any] | None = None
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """One entry of `ctd fit`'s task table.

    Args:
        schema: the config dataclass (a `RunConfig`), merged with YAML files and overrides.
        setup: config -> `PreparedRun`; every bad input fails here, before training.
        check: config -> None; the checks that need no model (run at config-load time).
        summary: one line for `ctd fit --help`.
    """

    schema: type[RunConfig]
    setup: Callable[[Any], PreparedRun]
    check: Callable[[Any], None]
    summary: str
