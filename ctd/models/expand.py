"""Byte n-gram input expansion for byte-level students (ALM notes, section e).

For every byte position of a byte-level input, find the longest token of the original
(subword) vocabulary that ends at this byte; the student's input embedding can then be
`E_byte[x_t] + E_original[expanded_t]`. FLOPs stay the same; the frozen original embedding
adds parameters. Windows never cross a special token; a special token expands to the original
token of the same string.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerFast

from ctd.models._vocab_bytes import bytes_to_token_id, vocab_bytes
from ctd.models.loading import require_fast_tokenizer

NO_TOKEN = -1


@dataclass(frozen=True)
class ByteExpansion:
    """Lookup tables for `expand_input_ids`.

    Attributes:
        original_id_by_bytes: Bytes of every original non-special token up to the length limit.
        original_id_by_special: Byte-tokenizer special id -> original id of the same string.
        max_token_bytes: The longest byte window looked at.
    """

    original_id_by_bytes: dict[bytes, int]
    original_id_by_special: dict[int, int]
    max_token_bytes: int


def byte_expansion(
    original_tokenizer: PreTrainedTokenizerFast,
    byte_tokenizer: PreTrainedTokenizerFast,
    *,
    max_token_bytes: int = 16,
) -> ByteExpansion:
    """Index the original vocabulary by bytes, for a byte tokenizer from `to_byte_level`.

    Args:
        original_tokenizer: The subword tokenizer whose embeddings are added.
        byte_tokenizer: The byte-level tokenizer (ids 0..255 = bytes, specials above).
        max_token_bytes: Longer original tokens are never matched (tokenkit uses 16).

    Returns:
        The lookup tables.
    """
    require_fast_tokenizer(original_tokenizer)
    require_fast_tokenizer(byte_tokenizer)
    by_bytes = {
        data: token_id
        for data, token_id in bytes_to_token_id(vocab_bytes(original_tokenizer)).items()
        if len(data) <= max_token_bytes
    }
    by_special: dict[int, int] = {}
    for byte_id, token in byte_tokenizer.added_tokens_decoder.items():
        original_id = original_tokenizer.backend_tokenizer.token_to_id(token.content)
        if original_id is not None:
            by_special[byte_id] = int(original_id)
    return ByteExpansion(by_bytes, by_special, max_token_bytes)


def expand_input_ids(input_ids: torch.Tensor, expansion: ByteExpansion) -> torch.Tensor:
    """Original id of the longest original token ending at each byte. Shapes: (B, T) -> (B, T).

    Ids 0..255 are bytes; any other id is a special token. Positions where no original token
    matches (a byte missing from the vocabulary, an unknown special) get `NO_TOKEN` (-1).
    """
    rows = input_ids.tolist()
    expanded = [_expand_row(row, expansion) for row in rows]
    return torch.tensor(expanded, dtype=torch.long, device=input_ids.device).reshape(
        input_ids.shape
    )


def _expand_row(row: list[int], expansion: ByteExpansion) -> list[int]:
    result: list[int] = []
    run_start = 0  # first byte of the current run of bytes (specials end a run)
    for position, token_id in enumerate(row):
        if token_id >= 256:
            result.append(expansion.original_id_by_special.get(token_id, NO_TOKEN))
            run_start = position + 1
            continue
        found = NO_TOKEN
        shortest_start = max(run_start, position + 1 - expansion.max_token_bytes)
        for start in range(shortest_start, position + 1):
            original_id = expansion.original_id_by_bytes.get(bytes(row[start : position + 1]))
            if original_id is not None:
                found = original_id
                break
        result.append(found)
    return result
