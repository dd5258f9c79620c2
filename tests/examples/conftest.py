"""A tiny random Llama with a tiny trained tokenizer, saved for the example scripts.

The builders are those of `tests/trainers/conftest.py` (loaded by path: conftest modules are not
importable by package name).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest


def _trainer_fixtures() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "trainers" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_ctd_trainer_fixtures", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny Llama folder (`model`) plus small training and held-out text files."""
    builders = _trainer_fixtures()
    root = tmp_path_factory.mktemp("tiny_example")
    model_dir = root / "model"
    tokenizer = builders._train_tokenizer("byte_bpe", 400, model_dir)
    builders._tiny_llama(len(tokenizer), model_dir, 0, tokenizer)
    train, heldout = root / "train.txt", root / "heldout.txt"
    train.write_text("\n\n".join(builders.TEXTS * 3))
    heldout.write_text("\n\n".join(builders.TEXTS[:6]))
    return {"model": model_dir, "train": train, "heldout": heldout}
