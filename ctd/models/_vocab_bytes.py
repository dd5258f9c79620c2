"""The exact bytes of every token of a fast tokenizer, and splitting bytes into its tokens.

Byte-level BPE tokens are strings in GPT-2's byte-to-unicode alphabet; SentencePiece tokens
write a space as `▁` and an unencodable byte as `<0xNN>`; other tokens are plain UTF-8.
Special tokens have no bytes: they are matched by their string.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from transformers import PreTrainedTokenizerFast

from ctd.alignment.token_bytes import bytes_to_unicode, token_bytes

VocabKind = Literal["byte_level", "sentencepiece", "plain"]
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPACE_MARK = "\u2581"  # ▁


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from each byte value to a printable character (cached)."""
    return bytes_to_unicode()


@lru_cache(maxsize=1)
def unicode_to_byte() -> dict[str, int]:
    """Inverse of `byte_to_unicode`."""
    return {char: byte for byte, char in byte_to_unicode().items()}


@dataclass(frozen=True)
class VocabBytes:
    """Bytes of each token id of one tokenizer.

    Attributes:
        kind: How token strings encode bytes.
        bytes_of: Index = token id; None for special tokens and ids no token has.
        token_of: Index = token id; the token string, None for ids no token has.
        is_special: Index = token id.
        is_byte_fallback: Index = token id; True for SentencePiece `<0xNN>` tokens.
    """

    kind: VocabKind
    bytes_of: list[bytes | None]
    token_of: list[str | None]
    is_special: list[bool]
    is_byte_fallback: list[bool]


def _component_types(component: Any) -> set[str]:
    """All `type` names inside a tokenizer.json component (recursing into Sequences)."""
    if isinstance(component, dict):
        found = {component["type"]} if isinstance(component.get("type"), str) else set()
        for value in component.values():
            found |= _component_types(value)
        return found
    if isinstance(component, list):
        return set().union(*(_component_types(item) for item in component))
    return set()


def vocab_kind(tokenizer: PreTrainedTokenizerFast) -> VocabKind:
    """Guess how the tokenizer's token strings encode bytes from its tokenizer.json pipeline."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    pipeline = {key: state.get(key) for key in ("normalizer", "pre_tokenizer", "decoder")}
    types = _component_types(pipeline)
    if "ByteLevel" in types:
        return "byte_level"
    if "Metaspace" in types or _SPACE_MARK in json.dumps(pipeline, ensure_ascii=False):
        return "sentencepiece"
    if state.get("model", {}).get("byte_fallback"):
        return "sentencepiece"
    return "plain"


def vocab_bytes(tokenizer: PreTrainedTokenizerFast) -> VocabBytes:
    """The bytes of every token id (from `ctd.alignment.token_bytes`), plus FVT's token facts."""
    kind = vocab_kind(tokenizer)
    table = token_bytes(tokenizer)
    vocab = tokenizer.get_vocab()
    size = max(max(vocab.values(), default=-1) + 1, len(table.bytes_of))
    bytes_of: list[bytes | None] = [None] * size
    token_of: list[str | None] = [None] * size
    is_special = [False] * size
    is_byte_fallback = [False] * size
    for token, token_id in vocab.items():
        token_of[token_id] = token
        is_special[token_id] = bool(table.is_special[token_id])
        if not is_special[token_id]:
            bytes_of[token_id] = table.bytes_of[token_id]
        is_fallback = bool(_BYTE_FALLBACK.fullmatch(token))
        is_byte_fallback[token_id] = kind == "sentencepiece" and is_fallback
    return VocabBytes(kind, bytes_of, token_of, is_special, is_byte_fallback)


def bytes_to_token_id(table: VocabBytes) -> dict[bytes, int]:
    """Map bytes -> token id over non-special tokens; regular tokens win over `<0xNN>` ones."""
    lookup: dict[bytes, int] = {}
    for prefer_fallback in (False, True):
        for token_id, data in enumerate(table.bytes_of):
            if data is not None and table.is_byte_fallback[token_id] == prefer_fallback:
                lookup.setdefault(data, token_id)
    return lookup


def split_into_tokens(
    tokenizer: PreTrainedTokenizerFast, table: VocabBytes, data: bytes
) -> list[int] | None:
    """Token ids of `tokenizer` whose bytes concatenate to `data`, by its model alone.

    No normalizer, pre-tokenizer, dummy prefix or special tokens are involved. Returns None
    when the bytes cannot be written with the vocabulary (unknown token, undecodable byte).
    """
    if not data:
        return None
    model = tokenizer.backend_tokenizer.model
    unk_token = tokenizer.unk_token
    unk_id = tokenizer.backend_tokenizer.token_to_id(unk_token) if unk_token else None
    if table.kind == "byte_level":
        table_chars = byte_to_unicode()
        pieces: list[int] | None = [
            token.id for token in model.tokenize("".join(table_chars[b] for b in data))
        ]
    else:
        pieces = _split_text_runs(tokenizer, table.kind, data)
    if not pieces or (unk_id is not None and unk_id in pieces):
        return None
    return pieces


def _split_text_runs(
    tokenizer: PreTrainedTokenizerFast, kind: VocabKind, data: bytes
) -> list[int] | None:
    """Split valid UTF-8 runs with the model and single invalid bytes via `<0xNN>` tokens."""
    model = tokenizer.backend_tokenizer.model
    text = data.decode("utf-8", errors="surrogateescape")
    pieces: list[int] = []
    run: list[str] = []
    for char in [*text, None]:
        is_raw_byte = char is not None and 0xDC80 <= ord(char) <= 0xDCFF
        if (char is None or is_raw_byte) and run:
            chunk = "".join(run)
            if kind == "sentencepiece":
                chunk = chunk.replace(" ", _SPACE_MARK)
            pieces.extend(token.id for token in model.tokenize(chunk))
            run = []
        if char is None:
            break
        if not is_raw_byte:
            run.append(char)
            continue
        fallback = tokenizer.backend_tokenizer.token_to_id(f"<0x{ord(char) - 0xDC00:02X}>")
        if fallback is None or kind != "sentencepiece":
            return None
        pieces.append(fallback)
    return pieces
