"""`student.lora` through `ctd fit`: adapters train, the rest stays frozen, the export is merged."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from test_fit import _config  # the tiny-model overrides

from ctd.config import ConfigError, FitConfig, load_config
from ctd.trainers.fit import run_fit


def test_lora_student_trains_adapters_only_and_exports_merged(tiny_models, tmp_path) -> None:
    config = _config(
        tiny_models,
        tmp_path,
        "student.tokenizer=bytes",
        "student.lora={r: 4, alpha: 8.0, target_modules: [q_proj, v_proj]}",
        "optim.lr=1e-2",
        "optim.warmup_steps=1",
        "trainer.max_steps=2",
        "losses=[{name: sft}]",
        f"export_dir={tmp_path / 'export'}",
    )
    result = run_fit(config)
    assert result.export_dir is not None
    exported = load_file(result.export_dir / "model.safetensors")
    teacher = load_file(tiny_models["teacher"] / "model.safetensors")
    assert not any("lora" in key or "base_layer" in key for key in exported)
    for key, weight in teacher.items():
        if "embed_tokens" in key or "lm_head" in key:
            continue  # new tokenizer: resized and trained in full
        if "q_proj" in key or "v_proj" in key:
            assert not torch.equal(exported[key], weight), key  # merged adapter moved it
        else:
            torch.testing.assert_close(exported[key], weight, rtol=0, atol=0)  # frozen


def test_lora_on_the_teacher_and_a_bad_rank_are_refused(tiny_models) -> None:
    from ctd.trainers.fit import prepare

    config = load_config(
        FitConfig,
        overrides=[f"teacher.name_or_path={tiny_models['teacher']}", "teacher.lora={r: 4}"],
    )
    with pytest.raises(ValueError, match="only the student"):
        prepare(config)
    with pytest.raises(ConfigError, match="lora.r must be at least 1"):
        load_config(FitConfig, overrides=["student.lora={r: 0}"])
