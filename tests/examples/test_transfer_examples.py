"""The transfer and distillation examples run end to end on tiny models, in subprocesses.

The tiny models are built with the helpers of `tests/trainers/conftest.py`, loaded by path: this
folder has no conftest.py, so that `from conftest import ...` elsewhere never resolves to it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).resolve().parents[1]
EXAMPLES = TESTS.parent / "examples"


def _trainer_fixtures() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_ctd_trainer_fixtures", TESTS / "trainers" / "conftest.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny Llama folders with different trained tokenizers, plus small text files."""
    builders = _trainer_fixtures()
    root = tmp_path_factory.mktemp("tiny_example")
    paths = {"model": root / "model", "other": root / "other"}
    for seed, (name, kind, vocab_size) in enumerate(
        [("model", "byte_bpe", 400), ("other", "digits_bpe", 330)]
    ):
        tokenizer = builders._train_tokenizer(kind, vocab_size, paths[name])
        builders._tiny_llama(len(tokenizer), paths[name], seed, tokenizer)
    paths["train"], paths["heldout"] = root / "train.txt", root / "heldout.txt"
    paths["train"].write_text("\n\n".join(builders.TEXTS * 3))
    paths["heldout"].write_text("\n\n".join(builders.TEXTS[:6]))
    return paths


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
