"""`ctd.trainers._common.combine_losses` and `log_training_losses` against hand-worked values."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from ctd.trainers._common import combine_losses, drop_frozen_weights, log_training_losses


def _student_and_losses() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Two blocks; the last one's only parameter w = 1, with losses a = 3 w and b = w."""
    student = nn.Module()
    student.blocks = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 1, bias=False)])
    with torch.no_grad():
        student.blocks[1].weight.fill_(1.0)
    w = student.blocks[1].weight.sum()
    return student, {"a": 3.0 * w, "b": w}


def test_weighted_sum() -> None:
    student, values = _student_and_losses()
    total = combine_losses(
        values, {"a": 2.0, "b": 0.5}, aggregation="weighted_sum", student=student
    )
    assert total.item() == pytest.approx(2.0 * 3.0 + 0.5 * 1.0)


def test_gradmag_weights_each_loss_by_its_inverse_last_layer_gradient_norm() -> None:
    student, values = _student_and_losses()
    # |dL_a/dw| = 3, |dL_b/dw| = 1: (3 / 3 + 1 / 1) / (1 / 3 + 1 / 1) = 1.5; the weights don't count
    total = combine_losses(
        values, {"a": 2.0, "b": 0.5}, aggregation="gradmag_preserve_mag", student=student
    )
    assert total.item() == pytest.approx(1.5)
    # every measured gradient mapped to 1: equal weights, (3 + 1) / 2
    total = combine_losses(
        values,
        {"a": 2.0, "b": 0.5},
        aggregation="gradmag_preserve_mag",
        student=student,
        reduce_gradient=torch.ones_like,
    )
    assert total.item() == pytest.approx(2.0)


def test_gradmag_with_one_loss_is_the_weighted_loss() -> None:
    student, values = _student_and_losses()
    total = combine_losses(
        {"a": values["a"]}, {"a": 2.0}, aggregation="gradmag_preserve_mag", student=student
    )
    assert total.item() == pytest.approx(6.0)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, torch.Tensor], dict[str, Any]]] = []

    def log_dict(self, values: dict[str, torch.Tensor], **options: Any) -> None:
        self.calls.append((values, options))

    def log(self, name: str, value: torch.Tensor, **options: Any) -> None:
        self.calls.append(({name: value}, options))


def test_log_training_losses_names_every_loss_and_the_total() -> None:
    recorder = _Recorder()
    loss = torch.tensor(2.0, requires_grad=True)
    log_training_losses(recorder, {"alm": loss * 1, "sft": loss * 2}, loss * 3, 4)  # type: ignore[arg-type]
    logged = {name: value for values, _ in recorder.calls for name, value in values.items()}
    assert {name: value.item() for name, value in logged.items()} == {
        "train/alm": 2.0,
        "train/sft": 4.0,
        "train/loss": 6.0,
    }
    assert not any(value.requires_grad for value in logged.values())
    assert all(options["batch_size"] == 4 for _, options in recorder.calls)
    assert recorder.calls[-1][1]["prog_bar"] is True


def test_drop_frozen_weights_keeps_everything_else() -> None:
    weight = torch.zeros(1)
    checkpoint = {
        "state_dict": {"teacher.w": weight, "teachers.0.w": weight, "student.w": weight},
        "epoch": 3,
    }
    drop_frozen_weights(checkpoint, "teacher.")
    assert set(checkpoint["state_dict"]) == {"teachers.0.w", "student.w"}
    assert checkpoint["epoch"] == 3
