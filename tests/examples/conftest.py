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
    """Two tiny Llama folders with different tokenizers, plus small text files."""
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
