"""A tokenizer seen as bytes: its byte-spelling tokens in byte order, and a text's context ids.

`TokenByteTrie` keeps the tokens that spell bytes (not special, not a role token such as BOS,
not `<unk>`, not empty) sorted by their bytes, so that the tokens starting with a given prefix
are one contiguous range (`bounds`): what `ctd.ensemble.byte_lm.ByteLM` sums its next-byte
masses over. `context_ids` is what a text is conditioned on (BOS).
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np
import numpy.typing as npt

from ctd.alignment.encode import template_special_ids
from ctd.alignment.token_bytes import token_bytes

__all__ = ["TokenByteTrie", "context_ids"]


def context_ids(tokenizer: Any) -> list[int]:
    """The ids a text is conditioned on: the tokenizer's own prefix (BOS), else BOS or EOS.

    Raises:
        ValueError: the tokenizer adds no prefix and has neither a BOS nor an EOS token.
    """
    prefix, _ = template_special_ids(tokenizer)
    if prefix:
        return list(prefix)
    for attribute in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, attribute, None)
        if isinstance(value, int):
            return [value]
    raise ValueError("the tokenizer adds no BOS and has no bos/eos token to condition a text on")


class TokenByteTrie:
    """The byte-spelling tokens of a tokenizer in byte order, with prefix ranges.

    Attributes:
        sorted_ids: token ids in byte order (N,) int64.
        keys: their bytes, sorted.
        vocab_size: the tokenizer's id count V.
        prepends_space: the tokenizer adds a dummy-prefix space to a text.
        uncovered_bytes: byte values no token starts with (texts containing them get p = 0).

    Raises:
        ValueError: the tokenizer cannot be mapped onto bytes (a normalizer that changes the
            text, a pre-tokenizer that drops whitespace, or no byte-spelling token).
    """

    def __init__(self, tokenizer: Any, *, name: str = "the member") -> None:
        table = token_bytes(tokenizer)
        if table.drops_whitespace:
            raise ValueError(f"{name}'s tokenizer cannot be mapped onto bytes: it drops whitespace")
        if table.normalizer is not None:
            raise ValueError(
                f"{name}'s tokenizer cannot be mapped onto bytes: its normalizer "
                f"({table.normalizer}) changes the text"
            )
        # role tokens (BOS, EOS, ...) that tokenizer.json leaves unflagged are not text either
        excluded = {table.unk_id, *getattr(tokenizer, "all_special_ids", [])}
        eligible = [
            index
            for index, spelled in enumerate(table.bytes_of)
            if spelled and not table.is_special[index] and index not in excluded
        ]
        if not eligible:
            raise ValueError(f"{name}'s tokenizer cannot be mapped onto bytes: no token has bytes")
        eligible.sort(key=lambda index: table.bytes_of[index])
        self.sorted_ids = np.asarray(eligible, dtype=np.int64)
        self.keys = [table.bytes_of[index] for index in eligible]
        self.bytes_of = table.bytes_of
        self.spells = np.zeros(table.vocab_size, dtype=bool)
        self.spells[self.sorted_ids] = True
        self.vocab_size = table.vocab_size
        self.prepends_space = table.prepends_space
        self.uncovered_bytes = sorted(set(range(256)) - {key[0] for key in self.keys})
        self._beyond = b"\xff" * (max(len(key) for key in self.keys) + 1)
        self._bounds: dict[bytes, npt.NDArray[np.int64]] = {}

    def bounds(self, prefix: bytes) -> npt.NDArray[np.int64]:
        """Sorted positions delimiting the tokens that start with `prefix`.

        Entry 0 is where they start (tokens equal to `prefix` come first), entry 1 + b where
        those continuing with byte b start, entry 257 where they end.

        Shapes: returns (258,) int64.
        """
        found = self._bounds.get(prefix)
        if found is not None:
            return found
        keys = self.keys
        start = bisect.bisect_left(keys, prefix)
        end = bisect.bisect_left(keys, prefix + self._beyond, start)
        children = [bisect.bisect_left(keys, prefix + bytes([b]), start, end) for b in range(256)]
        result = np.asarray([start, *children, end], dtype=np.int64)
        if len(self._bounds) > 200_000:
            self._bounds.clear()
        self._bounds[prefix] = result
        return result
