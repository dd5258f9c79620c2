"""Task `multi_distill`: two tiny teachers of different tokenizers and one student (CPU).

References: the single-teacher trainer (`DistillationModule` with `alm`, fed each teacher's
pair view of the same K-way batch) for `sum`, and for `ensemble` with identical teachers.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import _tiny_llama, _train_tokenizer

from ctd import cli
from ctd.config import ConfigError
from ctd.losses import ALMLoss
from ctd.trainers.distill_wiring import DISTILL_WIRINGS
from ctd.trainers.fit import load_run_config, prepare
from ctd.trainers.multi_distill import MultiDistillationModule
from ctd.trainers.transfer import DistillationModule
from ctd.trainers.wiring import compute_losses


@pytest.fixture(scope="module")
def second_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third tokenizer (byte-level BPE, 300 merges budget) and its tiny Llama."""
    path = tmp_path_factory.mktemp("teacher2")
    tokenizer = _train_tokenizer("byte_bpe", 300, path)
    _tiny_llama(len(tokenizer), path, 2, tokenizer)
    return path


def _overrides(tiny: dict[str, Path], second: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "task=multi_distill",
        f"teachers=[{{name_or_path: {tiny['teacher']}}}, {{name_or_path: {second}}}]",
        f"student.name_or_path={tiny['student']}",
        f"data.train_files=[{tiny['train']}]",
        f"data.val_files=[{tiny['heldout']}]",
        "data.batch_size=2",
        "data.max_teacher_length=64",
        "data.max_student_length=96",
        "data.max_document_bytes=120",
        "trainer.enable_progress_bar=false",
        f"trainer.default_root_dir={tmp_path / 'run'}",
        *extra,
    ]


@pytest.mark.parametrize("combine", ["ensemble", "sum"])
def test_fast_dev_run_through_ctd_fit(tiny_models, second_teacher, tmp_path, combine) -> None:
    arguments = _overrides(
        tiny_models,
        second_teacher,
        tmp_path,
        f"multi_teacher={combine}",
        "teacher_weights=[2.0, 1.0]",
        "losses=[{name: alm, kwargs: {append_space: true}}, {name: sft, weight: 0.5}]",
        "trainer.fast_dev_run=2",
        f"export_dir={tmp_path / 'export'}",
    )
    assert cli.main(["fit", *arguments]) == 0
    assert (tmp_path / "export" / "config.json").exists()


def _module_and_batch(tiny, second, tmp_path, *extra: str):  # type: ignore[no-untyped-def]
    config = load_run_config(overrides=_overrides(tiny, second, tmp_path, *extra))
    run = prepare(config)
    batch = next(iter(run.datamodule.train_dataloader()))
    assert isinstance(run.module, MultiDistillationModule)
    return config, run.module, batch


def _single_teacher_alm(module: MultiDistillationModule, batch, k: int, alm_kwargs) -> float:  # type: ignore[no-untyped-def]
    """The task `distill` ALM loss of teacher k and the same student on the pair view."""
    single = DistillationModule(
        module.teachers[k],
        module.student,
        module.teacher_vocabs[k],
        module.student_vocab,
        {"alm": ALMLoss(**alm_kwargs)},
        {"alm": 1.0},
        loss_aggregation="weighted_sum",
        optim=module.optim,
        max_steps=1,
    )
    pair = batch.pair(k, batch.num_sides - 1)
    teacher, student = single.forward_both(pair, single.teacher_needs, single.student_needs)
    return float(compute_losses(DISTILL_WIRINGS, single.losses, pair, teacher, student)["alm"])


def test_sum_mode_is_the_weighted_sum_of_single_teacher_losses(
    tiny_models, second_teacher, tmp_path
) -> None:
    kwargs = {"append_space": True, "temperature": 10.0}
    _, module, batch = _module_and_batch(
        tiny_models,
        second_teacher,
        tmp_path,
        "multi_teacher=sum",
        "teacher_weights=[3.0, 1.0]",
        "losses=[{name: alm, kwargs: {append_space: true, temperature: 10.0}}]",
    )
    assert batch.num_sides == 3
    with torch.no_grad():
        teachers, student = module.forward_sides(batch, module.teacher_needs, module.student_needs)
        value = float(module.loss_values(batch, teachers, student)["alm"])
        singles = [_single_teacher_alm(module, batch, k, kwargs) for k in range(2)]
    assert all(math.isfinite(x) and x > 0 for x in singles)
    assert singles[0] != pytest.approx(singles[1])
    assert value == pytest.approx(0.75 * singles[0] + 0.25 * singles[1], rel=1e-5)


def test_ensemble_of_one_teacher_twice_is_its_single_teacher_alm(tiny_models, tmp_path) -> None:
    _, module, batch = _module_and_batch(
        tiny_models,
        tiny_models["teacher"],
        tmp_path,
        "multi_teacher=ensemble",
        "teacher_weights=[0.3, 0.7]",
    )
    with torch.no_grad():
        teachers, student = module.forward_sides(batch, module.teacher_needs, module.student_needs)
        ensemble = float(module.loss_values(batch, teachers, student)["alm"])
        single = _single_teacher_alm(module, batch, 0, {})
    assert ensemble == pytest.approx(single, rel=1e-5)


def test_bad_configs_fail_at_load_time(tiny_models, second_teacher, tmp_path, capsys) -> None:
    base = _overrides(tiny_models, second_teacher, tmp_path)
    cases = {
        "multi_teacher=mean": "multi_teacher: 'mean' is not one of ensemble, sum",
        "teacher_weights=[1.0]": "teacher_weights has 1 entries for 2 teachers",
        "teacher_weights=[1.0, -1.0]": "finite and >= 0",
        "teachers=[]": "at least one teacher",
        "losses=[{name: kl}]": "not trained by task 'multi_distill'",
        "losses=[{name: alm, kwargs: {merge_by_space_prob: true}}]": "merge_by_space_prob",
    }
    for override, message in cases.items():
        with pytest.raises((ConfigError, ValueError), match=message):
            load_run_config(overrides=[*base, override])
    assert cli.main(["fit", *base, "multi_teacher=ensembel"]) == 2
    assert "did you mean 'ensemble'" in capsys.readouterr().err
