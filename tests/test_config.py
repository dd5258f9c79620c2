"""Config schemas: every YAML under configs/ loads; typos and bad types fail loudly."""

from pathlib import Path

import pytest

from ctd.config import ConfigError, FitConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
YAML_FILES = sorted((ROOT / "configs").rglob("*.yaml"))


def test_there_are_configs() -> None:
    assert len(YAML_FILES) >= 4


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_merges_into_its_schema(path: Path) -> None:
    from ctd.trainers.fit import load_run_config

    config = load_run_config([path])  # the schema of the task the file names
    if not isinstance(config, FitConfig):
        return
    assert config.mode in {"transfer", "distill"}
    assert config.losses, "a config without losses trains nothing"
    if config.mode == "distill":
        assert config.student.name_or_path, "distill needs its own student model"


def test_defaults_live_in_the_schema() -> None:
    config = load_config(FitConfig)
    assert config == FitConfig()


def test_overrides_apply_in_order(tmp_path: Path) -> None:
    yaml = tmp_path / "a.yaml"
    yaml.write_text("trainer:\n  max_steps: 7\ndata:\n  batch_size: 3\n")
    config = load_config(FitConfig, [yaml], ["trainer.max_steps=9"])
    assert config.trainer.max_steps == 9
    assert config.data.batch_size == 3


def test_typo_in_override_suggests_the_key() -> None:
    with pytest.raises(ConfigError, match="Did you mean.*max_steps"):
        load_config(FitConfig, overrides=["trainer.max_step=3"])


def test_typo_in_yaml_names_the_file(tmp_path: Path) -> None:
    yaml = tmp_path / "bad.yaml"
    yaml.write_text("optim:\n  lerning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*lerning_rate"):
        load_config(FitConfig, [yaml])


def test_wrong_type_is_an_error() -> None:
    with pytest.raises(ConfigError, match="max_steps"):
        load_config(FitConfig, overrides=["trainer.max_steps=many"])


def test_missing_yaml_is_a_file_not_found() -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(FitConfig, ["nope.yaml"])


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("mode=distil", "transfer, distill"),
        ("loss_aggregation=sum", "gradmag_preserve_mag, weighted_sum"),
        ("data.alignment_mode=word", "unconstrained, space, unbiased"),
        ("data.on_unmappable=ignore", "raise, skip"),
        ("student.dtype=fp32", "float32, bfloat16, float16"),
    ],
)
def test_string_choices_are_checked_at_load_time(override: str, allowed: str) -> None:
    with pytest.raises(ConfigError, match=f"not one of {allowed}"):
        load_config(FitConfig, overrides=[override])


def test_unbiased_mode_needs_its_bias_file_at_load_time() -> None:
    with pytest.raises(ConfigError, match="tokenizer_bias"):
        load_config(FitConfig, overrides=["data.alignment_mode=unbiased"])


def test_the_task_key_is_read_without_a_schema(tmp_path: Path) -> None:
    from ctd.config import read_task_name

    yaml = tmp_path / "a.yaml"
    yaml.write_text("task: drafter\n")
    assert read_task_name() == "distill"
    assert read_task_name([yaml]) == "drafter"
    assert read_task_name([yaml], ["task=distill"]) == "distill"
