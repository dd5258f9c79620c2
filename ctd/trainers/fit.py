"""Run any task of the registry: from a config to a trained, exported model.

`prepare` does everything that can fail on bad input (the task's checks, loading, data set-up),
`train` runs Lightning and exports; `run_fit` is both. A new task adds nothing here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L

from ctd.config import RunConfig, load_config, read_task_name, to_yaml
from ctd.trainers.builders import build_trainer, check_trainer_settings
from ctd.trainers.downstream import downstream_callbacks
from ctd.trainers.registry import get_task
from ctd.trainers.task import PreparedRun


@dataclass
class FitResult:
    """What a run produced."""

    metrics: dict[str, float]
    export_dir: Path | None
    log_dir: Path

    def summary(self) -> str:
        """A short human-readable report."""
        lines = [f"{k}: {v:.4f}" for k, v in sorted(self.metrics.items())]
        lines.append(f"logs: {self.log_dir}")
        if self.export_dir is not None:
            lines.append(f"exported: {self.export_dir}")
        return "\n".join(lines)


def load_run_config(yaml_paths: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> Any:
    """The merged config of the task the files and overrides name (`task`, default `distill`).

    Checked as far as is possible without loading a model.

    Raises:
        ConfigError / ValueError / FileNotFoundError: with a one-line message.
    """
    task = get_task(read_task_name(yaml_paths, overrides))
    config = load_config(task.schema, yaml_paths, overrides)
    task.check(config)
    return config


def prepare(config: RunConfig) -> PreparedRun:
    """Seed, check and build the task's module and data (all bad input fails here)."""
    task = get_task(config.task)
    if not isinstance(config, task.schema):
        raise TypeError(f"task {config.task!r} takes a {task.schema.__name__}")
    L.seed_everything(config.seed, workers=True, verbose=False)
    task.check(config)  # fail on a bad loss before loading any model
    check_trainer_settings(config.trainer)
    return task.setup(config)


def train(config: RunConfig, prepared: PreparedRun, callbacks: Sequence[Any] = ()) -> FitResult:
    """Fit (optionally validating first), save metrics and the config, export."""
    settings = config.trainer
    root = Path(settings.default_root_dir)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(to_yaml(config))
    metrics: dict[str, float] = {}
    downstream = downstream_callbacks(settings)  # questions read now: bad names fail here
    if settings.validate_before_fit:
        initial = build_trainer(settings, logger=False, callbacks=downstream).validate(
            prepared.module, datamodule=prepared.datamodule
        )
        metrics.update({f"initial/{k}": float(v) for k, v in initial[0].items()})
    trainer = build_trainer(settings, callbacks=[*callbacks, *downstream])
    trainer.fit(prepared.module, datamodule=prepared.datamodule, ckpt_path=config.resume_from)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
    (root / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    export_dir = None
    if config.export_dir and prepared.export is not None:
        export_dir = Path(prepared.export(config.export_dir))
    return FitResult(metrics=metrics, export_dir=export_dir, log_dir=root)


def run_fit(config: RunConfig, callbacks: Sequence[Any] = ()) -> FitResult:
    """Prepare and train as `config` says."""
    return train(config, prepare(config), callbacks)
