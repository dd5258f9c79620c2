"""The exact UTF-8 bytes of every token id, derived from a tokenizer's tokenizer.json.

No per-family tables: the byte rule of a vocabulary entry follows from the model, the
pre-tokenizer and the decoder. Byte-level BPE entries map each character through GPT-2's
byte-to-unicode table; SentencePiece entries turn the metaspace (`▁`) into a space and
`<0xNN>` byte-fallback entries into one byte; WordPiece continuation entries lose their prefix.
Added tokens are their literal content; they are special when tokenizer.json flags them so.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from ctd.alignment._backend import as_rust_tokenizer, components, tokenizer_json

__all__ = ["TokenBytes", "bytes_to_unicode", "token_bytes"]

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_WHITESPACE_BYTES = frozenset(b" \t\n\r\x0b\x0c")
_CACHE: OrderedDict[int, tuple[Tokenizer, int, TokenBytes]] = OrderedDict()
_CACHE_SIZE = 8


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (256 entries)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codepoints = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codepoints.append(256 + extra)
            extra += 1
    return {byte: chr(cp) for byte, cp in zip(printable, codepoints, strict=True)}


@dataclass(frozen=True)
class TokenBytes:
    """Per-id byte strings of one tokenizer and what its pipeline does to a text.

    Shapes: every array is (V,), V = the largest token id + 1.

    Attributes:
        bytes_of: the bytes each id stands for in a decoded text (index = token id).
        is_special: ids of special added tokens (and holes in the id range).
        byte_lengths: `len(bytes_of[i])` as int64.
        starts_with_whitespace: the first byte is ASCII whitespace.
        prepends_space: the pipeline may add one space before the text (a dummy prefix:
            a `Prepend` normalizer, Metaspace `prepend_scheme`, ByteLevel `add_prefix_space`).
        drops_whitespace: the pre-tokenizer removes whitespace (WordPiece/BERT style).
        normalizer: a readable name of the normalizer that may change the text, or None.
        blob: all `bytes_of` concatenated, for vectorised checks (sum of byte_lengths,).
        blob_starts: where each id's bytes start in `blob`.
        metaspace: the character that stands for a space in normalized text (`▁`), or None.
        length_proves_exact: the pipeline can only keep a text byte or lose it, never insert
            or substitute one (`_length_proves_exact`), so a row whose token bytes are as
            long as its text spells it exactly, unless it contains `unk_id`.
        unk_id: the model's unknown-token id, -1 if it has none.
    """

    bytes_of: list[bytes]
    is_special: npt.NDArray[np.bool_]
    byte_lengths: npt.NDArray[np.int64]
    starts_with_whitespace: npt.NDArray[np.bool_]
    prepends_space: bool
    drops_whitespace: bool
    normalizer: str | None
    blob: npt.NDArray[np.uint8]
    blob_starts: npt.NDArray[np.int64]
    metaspace: str | None
    length_proves_exact: bool = False
    unk_id: int = -1

    @property
    def vocab_size(self) -> int:
        """Number of ids, V."""
        return len(self.bytes_of)


def _model_entries(model: dict[str, Any]) -> dict[int, str]:
    """Token id -> vocabulary string of the model (BPE, WordPiece, WordLevel, Unigram)."""
    vocab = model.get("vocab", {})
    if isinstance(vocab, list):  # Unigram: [[piece, score], ...]
        return {index: piece for index, (piece, _) in enumerate(vocab)}
    return {int(index): piece for piece, index in vocab.items()}


def _metaspace_char(parsed: dict[str, Any]) -> str | None:
    """The character that stands for a space (`▁`), if the pipeline uses one."""
    for key, list_key in (("pre_tokenizer", "pretokenizers"), ("decoder", "decoders")):
        for node in components(parsed.get(key), list_key):
            if node.get("type") == "Metaspace":
                return str(node.get("replacement", "▁"))
            if node.get("type") == "Replace" and node.get("content") == " ":
                pattern = node.get("pattern", {})
                if "String" in pattern:
                    return str(pattern["String"])
    return None


def _is_byte_level(parsed: dict[str, Any]) -> bool:
    nodes = components(parsed.get("pre_tokenizer"), "pretokenizers")
    nodes += components(parsed.get("decoder"), "decoders")
    return any(node.get("type") == "ByteLevel" for node in nodes)


def _vocab_piece_to_bytes(parsed: dict[str, Any]) -> Any:
    """A function vocabulary string -> bytes for this tokenizer's model."""
    model = parsed["model"]
    if _is_byte_level(parsed):
        char_to_byte = {char: byte for byte, char in bytes_to_unicode().items()}

        def byte_level(piece: str) -> bytes:
            if all(char in char_to_byte for char in piece):
                return bytes(char_to_byte[char] for char in piece)
            return piece.encode("utf-8")

        return byte_level
    metaspace = _metaspace_char(parsed)
    byte_fallback = bool(model.get("byte_fallback", False))
    prefix = model.get("continuing_subword_prefix") or ""
    suffix = model.get("end_of_word_suffix") or ""
    is_wordpiece = model.get("type") == "WordPiece"

    def text_piece(piece: str) -> bytes:
        if byte_fallback and (match := _BYTE_FALLBACK.match(piece)):
            return bytes([int(match.group(1), 16)])
        if prefix and piece.startswith(prefix) and (is_wordpiece or len(piece) > len(prefix)):
            piece = piece[len(prefix) :]
        if suffix and piece.endswith(suffix) and len(piece) > len(suffix):
            piece = piece[: -len(suffix)]
        if metaspace:
            piece = piece.replace(metaspace, " ")
        return piece.encode("utf-8")

    return text_piece


def _pipeline_flags(parsed: dict[str, Any]) -> tuple[bool, bool, str | None]:
    """(prepends_space, drops_whitespace, normalizer name) read from tokenizer.json."""
    normalizers = components(parsed.get("normalizer"), "normalizers")
    pre_tokenizers = components(parsed.get("pre_tokenizer"), "pretokenizers")
    prepends = any(node.get("type") == "Prepend" for node in normalizers)
    for node in pre_tokenizers:
        if node.get("type") == "Metaspace":
            prepends |= node.get("prepend_scheme", "always") != "never"
            prepends |= bool(node.get("add_prefix_space", False))
        if node.get("type") == "ByteLevel":
            prepends |= bool(node.get("add_prefix_space", False))
    drops = any(
        node.get("type") in {"Whitespace", "WhitespaceSplit", "BertPreTokenizer"}
        for node in pre_tokenizers
    )
    drops |= parsed["model"].get("type") == "WordPiece"
    metaspace = _metaspace_char(parsed)

    def changes_text(node: dict[str, Any]) -> bool:
        if node.get("type") == "Prepend":
            return False  # a dummy prefix: handled exactly
        return not (node.get("type") == "Replace" and node.get("content") == metaspace)

    changing = [str(node.get("type")) for node in normalizers if changes_text(node)]
    return prepends, drops, ("+".join(changing) or None)


_SPLITTING_PRE_TOKENIZERS = frozenset(
    {
        "BertPreTokenizer",
        "ByteLevel",
        "CharDelimiterSplit",
        "Digits",
        "Metaspace",
        "Punctuation",
        "Split",
        "UnicodeScripts",
        "Whitespace",
        "WhitespaceSplit",
    }
)


def _length_proves_exact(parsed: dict[str, Any], prepends: bool) -> bool:
    """Whether equal byte length of a row's tokens and its text proves they spell it (no unk).

    The argument: take a BPE model, byte-level (every text byte is a character of GPT-2's
    table, mapped back one to one) or byte-fallback (a `<0xNN>` piece from the fallback is the
    text's byte), with no subword prefix/suffix, no dummy prefix, pre-tokenizers that only split
    (and may remove), and no normalizer except `Replace(" " -> metaspace)` that `token_bytes`
    inverts. Each token's bytes are then either exactly the text bytes it came from, or strictly
    fewer: a removed delimiter, a stripped added-token space, a literal metaspace (3 bytes ->
    1), a literal "<0xNN>" piece (6 -> 1), a char dropped without an unk token. Nothing inserts
    or substitutes bytes except `<unk>` (5 bytes for 1-4), which the caller excludes by id; a
    normalized added token with a metaspace in its content (matching a space) is excluded here.
    So total length equal -> nothing lost anywhere -> byte-exact. Everything else (any other
    normalizer, e.g. Lowercase or NFC; WordPiece; a dummy prefix) takes the full check.
    """
    model = parsed["model"]
    if model.get("type") != "BPE" or prepends:
        return False
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return False
    pre_tokenizers = components(parsed.get("pre_tokenizer"), "pretokenizers")
    if any(node.get("type") not in _SPLITTING_PRE_TOKENIZERS for node in pre_tokenizers):
        return False
    byte_level = any(node.get("type") == "ByteLevel" for node in pre_tokenizers)
    if not (byte_level or model.get("byte_fallback")):
        return False
    metaspace = None if byte_level else _metaspace_char(parsed)
    normalizers = components(parsed.get("normalizer"), "normalizers")
    for node in normalizers:
        inverted = node.get("type") == "Replace" and node.get("pattern") == {"String": " "}
        if not (inverted and metaspace is not None and node.get("content") == metaspace):
            return False
    if normalizers:
        for token in parsed.get("added_tokens", []):
            if token.get("normalized") and metaspace and metaspace in str(token["content"]):
                return False
    return True


def _unk_id(parsed: dict[str, Any]) -> int:
    model = parsed["model"]
    unk = model["unk_id"] if model.get("type") == "Unigram" else model.get("unk_token")
    vocab = parsed["model"].get("vocab", {})
    if isinstance(unk, int):  # Unigram: unk_id
        return unk
    if isinstance(unk, str) and isinstance(vocab, dict) and unk in vocab:
        return int(vocab[unk])
    return -1


def _build(parsed: dict[str, Any]) -> TokenBytes:
    entries = _model_entries(parsed["model"])
    added = {int(token["id"]): token for token in parsed.get("added_tokens", [])}
    vocab_size = max([*entries, *added, -1]) + 1
    piece_to_bytes = _vocab_piece_to_bytes(parsed)
    bytes_of: list[bytes] = [b""] * vocab_size
    is_special = np.ones(vocab_size, dtype=np.bool_)
    for index, piece in entries.items():
        bytes_of[index] = piece_to_bytes(piece)
        is_special[index] = False
    for index, token in added.items():
        bytes_of[index] = str(token["content"]).encode("utf-8")
        is_special[index] = bool(token.get("special"))
    byte_lengths = np.fromiter((len(b) for b in bytes_of), dtype=np.int64, count=vocab_size)
    starts_ws = np.fromiter(
        (bool(b) and b[0] in _WHITESPACE_BYTES for b in bytes_of), dtype=np.bool_, count=vocab_size
    )
    prepends, drops, normalizer = _pipeline_flags(parsed)
    blob = np.frombuffer(b"".join(bytes_of), dtype=np.uint8)
    blob_starts = np.concatenate([[0], np.cumsum(byte_lengths)[:-1]]).astype(np.int64)
    return TokenBytes(
        bytes_of=bytes_of,
        is_special=is_special,
        byte_lengths=byte_lengths,
        starts_with_whitespace=starts_ws,
        prepends_space=prepends,
        drops_whitespace=drops,
        normalizer=normalizer,
        blob=blob,
        blob_starts=blob_starts,
        metaspace=None if _is_byte_level(parsed) else _metaspace_char(parsed),
        length_proves_exact=_length_proves_exact(parsed, prepends),
        unk_id=_unk_id(parsed),
    )


def token_bytes(tokenizer: object) -> TokenBytes:
    """The exact bytes of every token id of a fast tokenizer (cached per tokenizer object).

    Args:
        tokenizer: a `tokenizers.Tokenizer` or a transformers fast tokenizer.

    Returns:
        The per-id bytes, special flags and pipeline flags.

    Raises:
        TypeError: if `tokenizer` is not a fast tokenizer.

    Example:
        >>> from tokenizers import Tokenizer, models, pre_tokenizers, decoders
        >>> tok = Tokenizer(models.BPE({"a": 0, "Ġ": 1, "Ġa": 2}, [("Ġ", "a")]))
        >>> tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        >>> token_bytes(tok).bytes_of
        [b'a', b' ', b' a']
    """
    rust = as_rust_tokenizer(tokenizer)
    size = rust.get_vocab_size(with_added_tokens=True)
    cached = _CACHE.get(id(rust))
    if cached is not None and cached[0] is rust and cached[1] == size:
        _CACHE.move_to_end(id(rust))
        return cached[2]
    result = _build(tokenizer_json(rust))
    _CACHE[id(rust)] = (rust, size, result)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result
