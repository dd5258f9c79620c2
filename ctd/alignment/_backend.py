"""Resolve any fast tokenizer to its Rust `tokenizers.Tokenizer` and its parsed tokenizer.json."""

from __future__ import annotations

import json
from typing import Any

from tokenizers import Tokenizer

__all__ = ["as_rust_tokenizer", "tokenizer_json"]


def as_rust_tokenizer(tokenizer: object) -> Tokenizer:
    """The Rust tokenizer behind `tokenizer`.

    Args:
        tokenizer: a `tokenizers.Tokenizer`, or a transformers fast tokenizer
            (`PreTrainedTokenizerFast` / `TokenizersBackend`, anything with `backend_tokenizer`).

    Raises:
        TypeError: for None, a slow (pure Python) tokenizer or any other object.
    """
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if tokenizer is None:
        raise TypeError("tokenizer is None; pass a fast tokenizer or a tokenizers.Tokenizer")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if isinstance(backend, Tokenizer):
        return backend
    raise TypeError(
        f"{type(tokenizer).__name__} is not a fast tokenizer: ctd.alignment needs a Rust-backed "
        "tokenizer (tokenizers.Tokenizer or a transformers PreTrainedTokenizerFast / "
        "TokenizersBackend with a tokenizer.json); slow Python tokenizers are not supported"
    )


def tokenizer_json(tokenizer: object) -> dict[str, Any]:
    """The tokenizer.json of `tokenizer` as a dict (model, normalizer, pre-tokenizer, decoder)."""
    parsed: dict[str, Any] = json.loads(as_rust_tokenizer(tokenizer).to_str())
    return parsed


def components(node: dict[str, Any] | None, list_key: str) -> list[dict[str, Any]]:
    """Flatten a normalizer / pre-tokenizer / decoder node, unrolling `Sequence` nodes."""
    if node is None:
        return []
    if node.get("type") == "Sequence":
        flat: list[dict[str, Any]] = []
        for child in node.get(list_key, []):
            flat += components(child, list_key)
        return flat
    return [node]
