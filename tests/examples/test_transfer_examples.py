"""The transfer and distillation examples run end to end on tiny models, in subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(script: str, *args: str) -> str:
    """Run `examples/<script>` with `args`; its stdout (the test fails on a non-zero exit)."""
    command = [sys.executable, str(EXAMPLES / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_byte_level_transfer_example(tiny_model_dir: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    stdout = run_example(
        "byte_level_transfer.py",
        f"--model={tiny_model_dir['model']}",
        f"--train-file={tiny_model_dir['train']}",
        f"--val-file={tiny_model_dir['heldout']}",
        f"--out={out}",
        "--steps=2",
        "--batch-size=2",
        "--max-bytes=64",
    )
    assert "generation: 'The capital of France is' -> '" in stdout
    assert (out / "export" / "model.safetensors").is_file()
    assert (out / "metrics.json").is_file()


@pytest.mark.slow
def test_distill_example(tiny_model_dir: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    stdout = run_example(
        "distill_gemma_to_smollm.py",
        f"--teacher={tiny_model_dir['model']}",
        f"--student={tiny_model_dir['other']}",
        f"--out={out}",
        "--steps=2",
        "--max-tokens=32",
        "--max-bytes=32",  # the tiny tokenizers barely compress the demo corpus
        "--val-batches=1",
    )
    assert "student generation: 'The capital of France is" in stdout
    assert (out / "export" / "model.safetensors").is_file()
