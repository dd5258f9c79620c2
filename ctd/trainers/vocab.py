"""Per-side vocabulary facts the losses need: which tokens are space-like, and EOS."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ctd.alignment import token_bytes

_WHITESPACE_BYTES = frozenset(b" \t\n\r\x0b\x0c")


@dataclass
class SideVocab:
    """Token facts of one side's model.

    Shapes:
        space_token_mask (V,) bool over the model's embedding rows (padding rows are False).
    """

    space_token_mask: Tensor
    eos_token_id: int | None

    @classmethod
    def from_tokenizer(cls, tokenizer: object, num_embeddings: int) -> SideVocab:
        """Space-like = the token's bytes start with ASCII whitespace, or it is special."""
        table = token_bytes(tokenizer)
        if len(table.bytes_of) > num_embeddings:
            raise ValueError(
                f"tokenizer has {len(table.bytes_of)} ids but the model only "
                f"{num_embeddings} embedding rows"
            )
        mask = torch.zeros(num_embeddings, dtype=torch.bool)
        for token_id, data in enumerate(table.bytes_of):
            mask[token_id] = bool(table.is_special[token_id]) or (
                len(data) > 0 and data[0] in _WHITESPACE_BYTES
            )
        eos = getattr(tokenizer, "eos_token_id", None)
        return cls(space_token_mask=mask, eos_token_id=eos)
