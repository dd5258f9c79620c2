"""`examples/byte_level_transfer.py` runs end to end on a tiny model, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_byte_level_transfer_example(tiny_model_dir: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable,
        str(EXAMPLES / "byte_level_transfer.py"),
        f"--model={tiny_model_dir['model']}",
        f"--train-file={tiny_model_dir['train']}",
        f"--val-file={tiny_model_dir['heldout']}",
        f"--out={out}",
        "--steps=2",
        "--batch-size=2",
        "--max-bytes=64",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "generation: 'The capital of France is' -> '" in done.stdout
    assert (out / "export" / "model.safetensors").is_file()
    assert (out / "metrics.json").is_file()
