"""Bits per UTF-8 byte of a text under any causal LM, every token scored once.

The text is tokenized once and cut into disjoint windows of the model's context, each scored
after one token of context (BOS/EOS for the first, the token before it for the others): the
rolling log-likelihood of lm-evaluation-harness (Gao et al.), through the request scoring of
`ctd.evaluation.downstream`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ctd.evaluation.downstream import (
    TokenRequest,
    encode_text,
    model_max_length,
    prefix_token_id,
    score_requests,
)

__all__ = ["TextResult", "rolling_windows", "text_bits_per_byte"]


def rolling_windows(token_ids: Sequence[int], prefix_id: int, window: int) -> list[TokenRequest]:
    """Disjoint windows that score every token once (lm-eval's rolling log-likelihood).

    The first window's context is `prefix_id`; each later one's is the token before it.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    requests = []
    for start in range(0, len(token_ids), window):
        context = (prefix_id,) if start == 0 else (int(token_ids[start - 1]),)
        requests.append(TokenRequest(context, tuple(token_ids[start : start + window])))
    return requests


@dataclass(frozen=True)
class TextResult:
    """Bits per UTF-8 byte of a text, every token scored once."""

    bits_per_byte: float
    num_bytes: int
    num_tokens: int


def text_bits_per_byte(
    model: nn.Module,
    tokenizer: Any,
    text: str,
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    progress: bool | None = False,
) -> TextResult:
    """Bits per byte of `text`: rolling windows of the model's context after a BOS/EOS prefix.

    Raises:
        ValueError: An empty text, or a tokenizer with neither BOS nor EOS.
    """
    if not text:
        raise ValueError("the text is empty")
    token_ids = encode_text(tokenizer, text, False)
    window = max_length if max_length is not None else model_max_length(model, tokenizer)
    requests = rolling_windows(token_ids, prefix_token_id(tokenizer), window)
    scores = score_requests(
        model, requests, batch_size=batch_size, max_length=window, progress=progress
    )
    num_bytes = len(text.encode("utf-8"))
    nats = -sum(score.logprob for score in scores)
    return TextResult(nats / math.log(2.0) / num_bytes, num_bytes, len(token_ids))
