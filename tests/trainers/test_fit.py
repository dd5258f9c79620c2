"""End to end: `run_fit` on tiny random Llamas with tiny trained tokenizers (CPU)."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import pytest
import torch

from ctd.config import FitConfig, load_config
from ctd.trainers.distill_wiring import DISTILL_WIRINGS
from ctd.trainers.fit import run_fit
from ctd.trainers.wiring import check_losses


def _config(tiny: dict[str, Path], tmp_path: Path, *overrides: str) -> FitConfig:
    base = [
        f"teacher.name_or_path={tiny['teacher']}",
        f"data.train_files=[{tiny['train']}]",
        f"data.val_files=[{tiny['heldout']}]",
        "data.batch_size=2",
        "data.max_teacher_length=48",
        "data.max_student_length=160",
        "data.max_document_bytes=160",
        "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=2",
        "trainer.val_check_interval=1000",
        f"trainer.default_root_dir={tmp_path / 'run'}",
    ]
    return load_config(FitConfig, overrides=[*base, *overrides])


def _logged_losses(root: Path) -> list[float]:
    (metrics_file,) = sorted((root / "csv").rglob("metrics.csv"))
    with metrics_file.open() as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/loss")]
    return [float(row["train/loss"]) for row in rows]


def test_fast_dev_run_transfer_to_bytes(tiny_models, tmp_path) -> None:
    config = _config(
        tiny_models,
        tmp_path,
        "student.tokenizer=bytes",
        "trainer.fast_dev_run=2",
        f"export_dir={tmp_path / 'export'}",
    )
    result = run_fit(config)
    assert math.isfinite(result.metrics["train/loss"])
    assert result.export_dir is not None

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(result.export_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.export_dir)
    text = "Café 🙂 au lait"
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == text
    assert model.get_input_embeddings().weight.shape[0] >= 256
    generated = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 4


def test_distill_between_different_tokenizers(tiny_models, tmp_path) -> None:
    config = _config(
        tiny_models,
        tmp_path,
        "mode=distill",
        f"student.name_or_path={tiny_models['student']}",
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
        "loss_aggregation=weighted_sum",
    )
    result = run_fit(config)
    assert math.isfinite(result.metrics["val/student_bpb"])
    assert math.isfinite(result.metrics["val/teacher_bpb"])
    assert result.metrics["val/teacher_bpb"] > 0


# Regression values of the first five training losses (ALM + SFT, GradMag, seed 0) of the tiny
# transfer-to-bytes setup; update them only for an intended change of the training math.
GOLDEN_FIRST_LOSSES: list[float] | None = [0.2393244, 0.2542218, 0.2935390, 0.2583550, 0.2568989]


@pytest.mark.slow
def test_golden_first_five_losses(tiny_models, tmp_path) -> None:
    torch.use_deterministic_algorithms(True)
    try:
        config = _config(
            tiny_models,
            tmp_path,
            "student.tokenizer=bytes",
            "trainer.max_steps=5",
            "trainer.log_every_n_steps=1",
        )
        run_fit(config)
    finally:
        torch.use_deterministic_algorithms(False)
    losses = _logged_losses(tmp_path / "run")
    assert len(losses) == 5
    assert all(math.isfinite(value) for value in losses)
    if GOLDEN_FIRST_LOSSES is not None:
        assert losses == pytest.approx(GOLDEN_FIRST_LOSSES, rel=1e-4, abs=1e-6)


def test_resume_continues_at_the_same_step_with_the_same_optimizer_state(
    tiny_models, tmp_path
) -> None:
    first = _config(tiny_models, tmp_path, "student.tokenizer=bytes", "trainer.max_steps=2")
    run_fit(first)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert saved["global_step"] == 2
    assert not any(key.startswith("teacher.") for key in saved["state_dict"])

    seen: dict[str, object] = {}

    import lightning as L

    class Probe(L.Callback):
        def on_train_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
            seen["step"] = trainer.global_step
            seen["optimizer"] = copy.deepcopy(trainer.optimizers[0].state_dict())

    resumed = _config(
        tiny_models,
        tmp_path,
        "student.tokenizer=bytes",
        "trainer.max_steps=3",
        f"resume_from={checkpoint}",
    )
    run_fit(resumed, callbacks=[Probe()])
    assert seen["step"] == 2
    saved_state = saved["optimizer_states"][0]["state"]
    resumed_state = seen["optimizer"]["state"]  # type: ignore[index]
    assert saved_state.keys() == resumed_state.keys()
    for key, values in saved_state.items():
        torch.testing.assert_close(values["exp_avg"], resumed_state[key]["exp_avg"])
        torch.testing.assert_close(values["exp_avg_sq"], resumed_state[key]["exp_avg_sq"])
        assert float(values["step"]) == float(resumed_state[key]["step"]) == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("losses=[{name: alms}]", "Did you mean 'alm'"),
        ("losses=[{name: alm, kwargs: {temprature: 2.0}}]", "temprature"),
    ],
)
def test_bad_losses_fail_before_loading_models(tiny_models, tmp_path, override, message) -> None:
    config = _config(tiny_models, tmp_path, override)
    with pytest.raises(ValueError, match=message):
        check_losses(config.losses, DISTILL_WIRINGS, "distill")


def test_missing_model_folder_is_named(tiny_models, tmp_path) -> None:
    config = _config(tiny_models, tmp_path, f"teacher.name_or_path={tmp_path / 'nowhere'}")
    with pytest.raises((FileNotFoundError, OSError), match="nowhere"):
        run_fit(config)


def test_empty_dataset_fails_before_training(tiny_models, tmp_path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    config = _config(
        tiny_models, tmp_path, "student.tokenizer=bytes", f"data.train_files=[{empty}]"
    )
    with pytest.raises(ValueError, match="empty"):
        run_fit(config)


def test_texts_longer_than_the_contexts_fail_before_training(tiny_models, tmp_path) -> None:
    config = _config(
        tiny_models,
        tmp_path,
        "student.tokenizer=bytes",
        "data.max_document_bytes=4000",
        "data.max_student_length=64",
    )
    with pytest.raises(ValueError, match=r"longer than the contexts.*max_document_bytes=\d+"):
        run_fit(config)


def test_ctd_fit_command_line(tiny_models, tmp_path, capsys) -> None:
    from ctd import cli

    yaml = tmp_path / "run.yaml"
    yaml.write_text(
        "mode: transfer\n"
        f"teacher: {{name_or_path: {tiny_models['teacher']}}}\n"
        "student: {tokenizer: bytes}\n"
        "losses: [{name: alm}, {name: sft, weight: 0.5}]\n"
        f"data: {{train_files: [{tiny_models['train']}], val_files: [{tiny_models['heldout']}],"
        " batch_size: 2, max_teacher_length: 48, max_student_length: 160,"
        " max_document_bytes: 150}\n"
    )
    root = tmp_path / "cli-run"
    arguments = ["fit", "--config", str(yaml), "trainer.fast_dev_run=1"]
    arguments += ["trainer.enable_progress_bar=false", f"trainer.default_root_dir={root}"]
    assert cli.main(arguments) == 0
    assert "train/loss" in capsys.readouterr().out
    assert (root / "config.yaml").read_text().count("name: sft") == 1
    assert cli.main(["fit", "--config", str(yaml), "trainer.max_stepz=1"]) == 2
    assert "max_steps" in capsys.readouterr().err


def test_mined_trains_from_a_config_across_tokenizers(tiny_models, tmp_path) -> None:
    config = _config(
        tiny_models,
        tmp_path,
        "mode=distill",
        f"student.name_or_path={tiny_models['student']}",
        "losses=[{name: mined}]",
        "trainer.fast_dev_run=2",
    )
    result = run_fit(config)
    assert math.isfinite(result.metrics["train/mined"])
    assert result.metrics["train/mined"] > 0


def test_eos_as_space_is_a_config_option(tiny_models, tmp_path) -> None:
    config = _config(
        tiny_models,
        tmp_path,
        "student.tokenizer=bytes",
        "losses=[{name: alm, kwargs: {eos_as_space: true, append_space: true}}]",
        "trainer.fast_dev_run=1",
    )
    assert math.isfinite(run_fit(config).metrics["train/alm"])


def test_an_sft_only_step_runs_no_teacher_forward(tiny_models, tmp_path) -> None:
    from ctd.trainers.fit import prepare

    config = _config(tiny_models, tmp_path, "student.tokenizer=bytes", "losses=[{name: sft}]")
    prepared = prepare(config)
    module = prepared.module
    calls = []
    module.teacher.base_model.register_forward_hook(lambda *_: calls.append(1))
    prepared.datamodule.setup("fit")
    batch = next(iter(prepared.datamodule.train_dataloader()))
    module.training_step(batch, 0)
    assert calls == []
    module.validation_step(batch, 0)  # validation scores both sides
    assert calls == [1]


def test_student_init_mean_starts_new_tokens_at_the_mean_embedding(tiny_models, tmp_path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from ctd.trainers.transfer import load_models

    # a BPE with merges the teacher's never learnt ("zzyzx", "qwq")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=280,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(["zzyzx qwq zzyzx qwqwq " * 30], trainer=trainer)
    folder = tmp_path / "odd_tokenizer"
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>").save_pretrained(
        folder
    )
    config = _config(tiny_models, tmp_path, f"student.tokenizer={folder}", "student.init=mean")
    models = load_models(config)
    weight = models.student.get_input_embeddings().weight.detach()  # (V_student, d)
    teacher_weight = models.teacher.get_input_embeddings().weight.detach()  # (V_teacher, d)
    mean = teacher_weight.mean(0)
    is_mean = torch.isclose(weight, mean, atol=1e-6).all(-1)
    is_copy = (weight[:, None] == teacher_weight[None]).all(-1).any(-1)  # bit for bit
    # every row is an exact copy of a teacher row with the same bytes, or the mean
    assert bool((is_mean | is_copy).all())
    assert int(is_mean.sum()) > 0
    assert int(is_copy.sum()) > 200  # the single bytes and shared merges
