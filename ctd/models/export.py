"""Save a model and its tokenizer as a plain transformers checkpoint (safetensors)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerFast

from ctd.models.atomic import fsync_tree, partial_path, replace_directory
from ctd.models.loading import check_model_tokenizer_match, to_plain_model
from ctd.models.lora import merged_copy


def export_pretrained(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, out_dir: str | Path
) -> Path:
    """Write a folder that `AutoModelForCausalLM` and `AutoTokenizer.from_pretrained` load.

    Weights go to `model.safetensors` (sharded when large); LoRA adapters are merged (into a
    copy: `model` keeps them); a GGUF-loaded model is first
    re-built as a plain model. The folder is written under a private name, fsynced and moved
    into place (`ctd.models.atomic`): a crash mid-export leaves the previous export intact.

    Args:
        model: The causal LM.
        tokenizer: Its fast tokenizer; it must fit the model's embedding.
        out_dir: The folder to write (created if missing).

    Returns:
        The folder.

    Raises:
        TypeError: The tokenizer is not a fast tokenizer.
        ValueError: The tokenizer does not fit the model, or `out_dir` is a non-empty folder
            that holds no earlier export.
    """
    check_model_tokenizer_match(model, tokenizer)
    out_path = Path(out_dir)
    if out_path.is_dir() and any(out_path.iterdir()) and not (out_path / "config.json").is_file():
        raise ValueError(
            f"{out_path} is a folder that holds no export (no config.json): export into a new "
            "or empty folder, or an earlier export (which is replaced)"
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(out_path)
    shutil.rmtree(partial, ignore_errors=True)
    try:
        to_plain_model(merged_copy(model)).save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        fsync_tree(partial)
        replace_directory(partial, out_path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out_path


COMPLETE_MARKER = ".ctd-complete"
"""File written last into a cached checkpoint folder: its presence means the export finished."""


def is_cached_checkpoint(out_dir: Path) -> bool:
    """Whether `export_once` finished writing `out_dir`."""
    return (out_dir / COMPLETE_MARKER).is_file()


def export_once(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, out_dir: Path, note: str
) -> Path:
    """Export into a private folder, mark it complete, then move it to `out_dir` atomically.

    An interrupted conversion never leaves a folder that `is_cached_checkpoint` accepts.
    """
    partial_dir = out_dir.with_name(f"{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial_dir, ignore_errors=True)
    export_pretrained(model, tokenizer, partial_dir)
    (partial_dir / COMPLETE_MARKER).write_text(note + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    partial_dir.rename(out_dir)
    return out_dir
