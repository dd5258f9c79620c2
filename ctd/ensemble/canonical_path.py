"""Where a text's canonical tokenization ends its tokens: the path a `ByteLM` beam keeps.

A finite beam can lose a text's canonical tokenization; `ctd.ensemble.byte_lm.ByteLM.score`
keeps it (see that module's docstring), following a *plan*: the text byte at which each
canonical token ends -> that token's id. `token_plan` builds one from token ids,
`canonical_ends` from a text (tokenized as the tokenizer does), `canonical_text` decodes the
bytes to score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ctd.alignment.encode import encode
from ctd.ensemble.token_byte_trie import TokenByteTrie

__all__ = ["canonical_ends", "canonical_text", "token_plan"]


def canonical_text(data: bytes) -> str:
    """`data` as text, to tokenize canonically.

    Raises:
        ValueError: the bytes are not UTF-8.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"keep_canonical needs UTF-8 bytes (a text to tokenize), got {error}; "
            "pass keep_canonical=False"
        ) from None


def token_plan(
    trie: TokenByteTrie, ids: Sequence[int], first_byte: int = 0, *, name: str
) -> dict[int, int]:
    """Where each token of `ids` ends, in bytes counted from `first_byte` -> its id.

    Raises:
        ValueError: a token that does not spell bytes (special, `<unk>`).
    """
    bad = [int(i) for i in ids if not trie.spells[i]]
    if bad:
        raise ValueError(f"{name}: canonical token {bad[0]} of the text spells no bytes")
    ends = np.cumsum([len(trie.bytes_of[i]) for i in ids]) + first_byte - 1
    return {int(end): int(token) for end, token in zip(ends, ids, strict=True)}


def canonical_ends(tokenizer: Any, trie: TokenByteTrie, text: str, *, name: str) -> dict[int, int]:
    """Where each token of `text`'s canonical tokenization ends (in text bytes) -> its id.

    Raises:
        ValueError: a canonical token that does not spell bytes (special, `<unk>`), or
            tokens whose bytes are not the text's (after the dummy-prefix space, if any).
    """
    ids = [int(i) for i in encode(tokenizer, [text], add_special_tokens=False)[0].input_ids]
    space = b" " if trie.prepends_space else b""
    plan = token_plan(trie, ids, first_byte=-len(space), name=name)
    if b"".join(trie.bytes_of[i] for i in ids) != space + text.encode("utf-8"):
        raise ValueError(f"{name}: the canonical tokens spell other bytes than the text")
    return plan
