"""`student.init` / `student.donor`: checked when the config loads."""

from __future__ import annotations

import pytest

from ctd.config import ConfigError, DistillConfig, load_config


def test_init_defaults_to_fvt() -> None:
    assert load_config(DistillConfig).student.init == "fvt"


def test_init_typo_names_the_choices() -> None:
    with pytest.raises(
        ConfigError, match="init: 'ompp' is not one of fvt, omp, mean, random; did you mean 'omp'"
    ):
        load_config(DistillConfig, overrides=["student.init=ompp"])


def test_omp_needs_a_donor() -> None:
    with pytest.raises(ConfigError, match="init=omp needs donor"):
        load_config(DistillConfig, overrides=["student.init=omp"])
    config = load_config(DistillConfig, overrides=["student.init=omp", "student.donor=some/model"])
    assert config.student.donor == "some/model"
