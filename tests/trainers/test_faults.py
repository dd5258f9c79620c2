"""NaN/inf in a step: `trainer.on_nonfinite=raise` stops naming the step, the batch's first
document and the loss; `skip` leaves the weights and the optimizer state as they were."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from test_fit import _config

from ctd.config import ConfigError, FitConfig, load_config
from ctd.trainers.faults import NonFiniteError, first_nonfinite
from ctd.trainers.fit import run_fit


class Poison(L.Callback):
    """At global step `step`, make the student's final hidden states (or one gradient) NaN.

    Also records the student's weights and AdamW state after every step.
    """

    def __init__(self, step: int, where: str) -> None:
        self.step, self.where = step, where
        self.handles: list[Any] = []
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.moments: dict[int, list[torch.Tensor]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if trainer.global_step != self.step:
            return
        student = pl_module.student
        if self.where == "hidden":
            hook = student.model.norm.register_forward_hook(lambda m, i, out: out * torch.nan)
        else:
            weight = student.model.layers[0].mlp.up_proj.weight
            hook = weight.register_hook(lambda grad: grad * torch.inf)
        self.handles.append(hook)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        step = trainer.global_step  # after this batch's optimizer step
        self.weights[step] = copy.deepcopy(pl_module.student.state_dict())
        state = trainer.optimizers[0].state
        self.moments[step] = [s["exp_avg"].clone() for s in state.values() if "exp_avg" in s]


def _skipped_batches(root: Path) -> list[float]:
    (metrics_file,) = sorted((root / "csv").rglob("metrics.csv"))
    with metrics_file.open() as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/skipped_batches")]
    return [float(row["train/skipped_batches"]) for row in rows]


def test_first_nonfinite_names_the_first_bad_tensor() -> None:
    good, bad = torch.zeros(3), torch.tensor([0.0, float("inf")])
    assert first_nonfinite({"a": good, "b": torch.tensor([1, 2])}) is None
    assert first_nonfinite({"a": good, "b": bad, "c": bad * torch.nan}) == "b"
    assert first_nonfinite({"ids": torch.tensor([1]), "x": (bad,)}) is None  # ints, tuples


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_first_nonfinite_finds_one_bad_value_anywhere(value: float, dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        big = torch.randn(300, 7, generator=generator).to(dtype)
        where = int(torch.randint(big.numel(), (1,), generator=generator))
        big.view(-1)[where] = value
        tensors = {"empty": torch.zeros(0), "fine": torch.ones(4, dtype=dtype), "big": big}
        # reference: an explicit loop over every element
        expected = next(
            (
                n
                for n, t in tensors.items()
                if any(not math.isfinite(x) for x in t.flatten().tolist())
            ),
            None,
        )
        assert expected == "big"
        assert first_nonfinite(tensors) == expected
        assert first_nonfinite({**tensors, "big": big.t()}) == "big"  # non-contiguous too
    assert first_nonfinite({"empty": torch.zeros(0), "fine": torch.ones(3)}) is None


@pytest.mark.parametrize(("where", "named"), [("hidden", "student"), ("gradient", "gradient of")])
def test_raise_names_the_step_the_document_and_the_loss(
    tiny_models, tmp_path, where, named
) -> None:  # type: ignore[no-untyped-def]
    config = _config(tiny_models, tmp_path, "student.tokenizer=bytes", "trainer.max_steps=4")
    with pytest.raises(NonFiniteError) as caught:
        run_fit(config, callbacks=[Poison(2, where)])
    message = str(caught.value)
    assert f"NaN or inf in the {named}" in message or f"NaN or inf in {named}" in message
    assert "at step 2 (epoch 0, batch 2, rank 0)" in message
    assert f"first document {tiny_models['train']} example " in message
    loss = "loss nan" if where == "hidden" else "loss 0."  # a finite loss, bad gradients
    assert loss in message
    assert "trainer.on_nonfinite=skip" in message


@pytest.mark.parametrize("where", ["hidden", "gradient"])
def test_skip_never_trains_on_the_batch_and_counts_it(tiny_models, tmp_path, where) -> None:  # type: ignore[no-untyped-def]
    config = _config(
        tiny_models,
        tmp_path,
        "student.tokenizer=bytes",
        "trainer.max_steps=4",
        "trainer.on_nonfinite=skip",
        "trainer.log_every_n_steps=1",
    )
    poison = Poison(2, where)
    run_fit(config, callbacks=[poison])
    for name, before in poison.weights[2].items():  # step 3 (global step 2 -> 3) was skipped
        torch.testing.assert_close(poison.weights[3][name], before, rtol=0, atol=0)
    for before, after in zip(poison.moments[2], poison.moments[3], strict=True):
        torch.testing.assert_close(after, before, rtol=0, atol=0)
    changed = any(
        not torch.equal(poison.weights[4][name], value) for name, value in poison.weights[3].items()
    )
    assert changed  # the next step trains again
    assert all(torch.isfinite(v).all() for v in poison.weights[4].values())
    assert _skipped_batches(tmp_path / "run") == [0.0, 0.0, 1.0, 1.0]


def test_on_nonfinite_is_a_checked_choice() -> None:
    with pytest.raises(ConfigError, match="did you mean 'skip'"):
        load_config(FitConfig, overrides=["trainer.on_nonfinite=skp"])
