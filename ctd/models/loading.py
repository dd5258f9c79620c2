"""Load causal LMs and fast tokenizers from a local folder, a hub id or a GGUF file.

Weights are read from safetensors only (never pickles), and remote code runs only when asked.
A model read from a GGUF file is dequantized by transformers and then re-built as a plain model,
so that `save_pretrained` works on it.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

GGUF_INSTALL_HINT = 'pip install "ctd-distill[gguf]"'
_ROLES = ("bos", "eos", "pad", "unk")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def require_fast_tokenizer(tokenizer: Any) -> PreTrainedTokenizerFast:
    """Return `tokenizer` if it is a fast (Rust `tokenizers`) tokenizer, else raise TypeError."""
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise TypeError(
            f"ctd needs a fast (Rust `tokenizers`) tokenizer, got {type(tokenizer).__name__}; "
            "slow Python tokenizers are not supported (convert it to a tokenizer.json first)."
        )
    return tokenizer


def require_gguf() -> None:
    """Raise ImportError with the install hint when the `gguf` package is missing."""
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(
            f"Loading GGUF files needs the `gguf` package: {GGUF_INSTALL_HINT} "
            "(or pip install gguf accelerate)."
        )


def _looks_like_path(name_or_path: str) -> bool:
    """Whether a string that does not exist on disk was meant as a path, not a hub id."""
    if name_or_path.startswith((".", "/", "~", "\\")) or name_or_path.endswith(".gguf"):
        return True
    return name_or_path.count("/") > 1 or "\\" in name_or_path


def _resolve_source(name_or_path: str, gguf_file: str | None) -> tuple[str, str | None]:
    """Check that local files exist; split a path to a `.gguf` file into (folder, file name)."""
    path = Path(name_or_path).expanduser()
    if gguf_file is None and path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if path.is_file():
        raise FileNotFoundError(f"{path} is a file; expected a model folder or a .gguf file")
    if path.is_dir():
        if gguf_file is not None and not (path / gguf_file).is_file():
            raise FileNotFoundError(f"GGUF file not found: {path / gguf_file}")
        return str(path), gguf_file
    if _looks_like_path(name_or_path):
        raise FileNotFoundError(f"No such file or directory: {name_or_path}")
    return name_or_path, gguf_file


def _from_pretrained_args(
    name_or_path: str,
    gguf_file: str | None,
    revision: str | None,
    local_files_only: bool | None,
    trust_remote_code: bool,
) -> tuple[str, dict[str, Any]]:
    """The source and keyword arguments for a `from_pretrained` call (GGUF checked)."""
    source, gguf_name = _resolve_source(name_or_path, gguf_file)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if revision is not None:
        kwargs["revision"] = revision
    if local_files_only is not None:
        kwargs["local_files_only"] = local_files_only
    if gguf_name is not None:
        require_gguf()
        kwargs["gguf_file"] = gguf_name
    return source, kwargs


def _in_eval_mode(model: Any) -> PreTrainedModel:
    model.eval()
    return model  # type: ignore[no-any-return]


def input_embedding_weight(model: PreTrainedModel) -> torch.Tensor:
    """The input embedding matrix. Shapes: (V, d)."""
    embedding: Any = model.get_input_embeddings()
    return embedding.weight  # type: ignore[no-any-return]


def to_plain_model(model: PreTrainedModel) -> PreTrainedModel:
    """Re-build a GGUF-loaded (dequantized) model as a plain model that can `save_pretrained`.

    Models without a `quantization_config` are returned unchanged.
    """
    if getattr(model.config, "quantization_config", None) is None:
        return model
    config = copy.deepcopy(model.config)
    del config.quantization_config
    parameter = next(model.parameters())
    auto_class: Any = AutoModelForCausalLM
    plain: Any = auto_class.from_config(config, dtype=parameter.dtype)
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.generation_config = model.generation_config
    plain.tie_weights()
    return _in_eval_mode(plain)


def load_causal_lm(
    name_or_path: str,
    *,
    gguf_file: str | None = None,
    dtype: torch.dtype = torch.float32,
    trust_remote_code: bool = False,
    revision: str | None = None,
    local_files_only: bool | None = None,
) -> PreTrainedModel:
    """Load any `AutoModelForCausalLM` from a local folder, a hub id or a GGUF file.

    Args:
        name_or_path: A local folder, a hub id, or a path to a `.gguf` file.
        gguf_file: Name of a GGUF file inside `name_or_path` (needs the `gguf` extra).
        dtype: The dtype of the loaded weights (GGUF weights are dequantized to it).
        trust_remote_code: Allow the model's own Python code to run.
        revision: Hub revision (branch, tag or commit).
        local_files_only: Never touch the network when True.

    Returns:
        The model in eval mode; a GGUF model comes back as a plain model.

    Raises:
        FileNotFoundError: A local path or GGUF file does not exist.
        ImportError: A GGUF file was asked for but `gguf` is not installed.
    """
    source, kwargs = _from_pretrained_args(
        name_or_path, gguf_file, revision, local_files_only, trust_remote_code
    )
    if "gguf_file" not in kwargs:
        if Path(source).is_dir() and not (Path(source) / "config.json").is_file():
            raise FileNotFoundError(f"No config.json in model folder {source}")
        kwargs["use_safetensors"] = True
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    return _in_eval_mode(to_plain_model(model))


def load_tokenizer(
    name_or_path: str,
    *,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    local_files_only: bool | None = None,
) -> PreTrainedTokenizerFast:
    """Load a fast tokenizer from a local folder, a hub id or a GGUF file.

    Args:
        name_or_path: A local folder, a hub id, or a path to a `.gguf` file.
        gguf_file: Name of a GGUF file inside `name_or_path` (needs the `gguf` extra).
        trust_remote_code: Allow the tokenizer's own Python code to run.
        revision: Hub revision (branch, tag or commit).
        local_files_only: Never touch the network when True.

    Returns:
        The fast tokenizer.

    Raises:
        FileNotFoundError: A local path or GGUF file does not exist.
        ImportError: A GGUF file was asked for but `gguf` is not installed.
        TypeError: Only a slow (Python) tokenizer is available.
    """
    source, kwargs = _from_pretrained_args(
        name_or_path, gguf_file, revision, local_files_only, trust_remote_code
    )
    if "gguf_file" not in kwargs and Path(source).is_dir():
        folder = Path(source)
        if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
            raise FileNotFoundError(f"No tokenizer files in {source}")
    tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **kwargs)
    return require_fast_tokenizer(tokenizer)


def tokenizer_id_count(tokenizer: PreTrainedTokenizerBase) -> int:
    """One more than the largest token id the tokenizer can produce (added tokens included)."""
    vocab = tokenizer.get_vocab()
    return max(len(tokenizer), max(vocab.values(), default=-1) + 1)


def check_model_tokenizer_match(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Raise ValueError when a tokenizer does not fit a model's input embedding.

    Ids beyond the embedding rows are an error, and so is an embedding more than twice (and
    over 1024 rows) larger than the tokenizer: padding rows are normal, that many are not.

    Raises:
        TypeError: The tokenizer is not a fast tokenizer.
        ValueError: The two clearly do not belong together.
    """
    require_fast_tokenizer(tokenizer)
    rows = input_embedding_weight(model).shape[0]
    ids = tokenizer_id_count(tokenizer)
    if ids > rows:
        raise ValueError(
            f"Tokenizer produces ids up to {ids - 1} ({ids} ids) but the model's embedding has "
            f"only {rows} rows: they do not belong together."
        )
    if rows > 2 * ids and rows - ids > 1024:
        raise ValueError(
            f"The model's embedding has {rows} rows but the tokenizer uses only {ids} ids: "
            "they do not belong together (re-initialise the embeddings for the new tokenizer, "
            "e.g. with ctd.models.fvt_init_embeddings)."
        )


def wrap_backend_like(
    backend: Tokenizer, template: PreTrainedTokenizerFast
) -> PreTrainedTokenizerFast:
    """Wrap a `tokenizers.Tokenizer` with the role tokens and chat template of `template`."""
    role_tokens = {f"{role}_token": getattr(template, f"{role}_token") for role in _ROLES}
    factory: Any = PreTrainedTokenizerFast
    wrapped: PreTrainedTokenizerFast = factory(
        tokenizer_object=backend,
        **{key: value for key, value in role_tokens.items() if value is not None},
        chat_template=template.chat_template,
        clean_up_tokenization_spaces=False,
        model_max_length=template.model_max_length,
        padding_side=template.padding_side,
        truncation_side=template.truncation_side,
    )
    return wrapped
