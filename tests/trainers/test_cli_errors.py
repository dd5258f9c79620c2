"""`ctd fit` on bad input: one line `ctd fit: error: ...`, exit code 2, no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ctd import cli

ROOT = Path(__file__).resolve().parents[2]


def _base(tiny: dict[str, Path], tmp_path: Path) -> list[str]:
    return [
        "fit",
        f"teacher.name_or_path={tiny['teacher']}",
        f"data.train_files=[{tiny['train']}]",
        "trainer.enable_progress_bar=false",
        f"trainer.default_root_dir={tmp_path / 'run'}",
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("losses=[{name: alms}]", "unknown loss 'alms'. Did you mean 'alm'?"),
        ("losses=[{name: tvdpp}]", "loss 'tvdpp' is not trained by task 'distill'"),
        ("losses=[{name: alm, kwargs: {temprature: 2}}]", "unknown argument(s) ['temprature']"),
        ("mode=distil", "mode: 'distil' is not one of transfer, distill; did you mean 'distill'?"),
        ("data.alignment_mode=spaces", "data.alignment_mode: 'spaces' is not one of"),
        ("data.on_unmappable=drop", "data.on_unmappable: 'drop' is not one of raise, skip"),
        ("loss_aggregation=gradmag", "loss_aggregation: 'gradmag' is not one of"),
        ("teacher.dtype=bf16", "dtype: 'bf16' is not one of float32, bfloat16, float16"),
        ("trainer.max_step=3", "Did you mean"),
        ("teacher.name_or_path=/nowhere/model", "/nowhere/model"),
        ("mode=distill", "mode=distill needs student.name_or_path"),
        ("trainer.precision=bf17", "Precision 'bf17' is invalid"),
        ("trainer.accelerator=gpu", "No supported gpu backend found"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(
    tiny_models, tmp_path, capsys, override: str, message: str
) -> None:
    assert cli.main([*_base(tiny_models, tmp_path), override]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("ctd fit: error: ")
    assert message in lines[0]
    assert "Traceback" not in captured.err


def test_missing_config_file_is_named(capsys) -> None:
    assert cli.main(["fit", "--config", "no/such.yaml"]) == 2
    assert "no/such.yaml" in capsys.readouterr().err


def test_debug_shows_the_traceback(capsys) -> None:
    assert cli.main(["fit", "--debug", "losses=[{name: alms}]"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("ctd fit: error: unknown loss 'alms'")


def test_the_console_script_exits_2_without_a_traceback(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ctd.cli", "fit", "mode=nope"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ctd fit: error: mode: 'nope'")
    assert "Traceback" not in result.stderr


def test_every_path_named_in_the_help_exists(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["fit", "--help"])
    named = re.findall(r"configs/\S+\.yaml", capsys.readouterr().out)
    assert named
    for path in named:
        assert (ROOT / path).is_file(), path
