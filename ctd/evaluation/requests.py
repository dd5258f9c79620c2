"""Scoring requests: (context, continuation) pairs as token ids, tokenized as lm-eval-harness does.

A request is tokenized with lm-eval-harness's rule for Hugging Face models (`HFLM._encode_pair`):
trailing spaces of the context move to the start of the continuation, the concatenation is
tokenized once, and the continuation's tokens are the ones after the context's own token count;
an empty context becomes the model's BOS (else EOS) token. Inputs longer than the model's
context are cut on the left (`model_input`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = [
    "RequestScore",
    "TokenRequest",
    "encode_pair",
    "encode_text",
    "model_input",
    "model_max_length",
    "move_trailing_spaces",
    "prefix_token_id",
]


@dataclass(frozen=True)
class TokenRequest:
    """Token ids of a context (at least one) and of the continuation scored after it."""

    context_ids: tuple[int, ...]
    continuation_ids: tuple[int, ...]


@dataclass(frozen=True)
class RequestScore:
    """Summed continuation log-probability (nats), and whether every token was the argmax."""

    logprob: float
    is_greedy: bool
    num_tokens: int


def prefix_token_id(tokenizer: Any) -> int:
    """The token an empty context stands for: BOS, else EOS.

    Raises:
        ValueError: The tokenizer has neither.
    """
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise ValueError("the tokenizer has no BOS or EOS token to stand for an empty context")


def encode_text(tokenizer: Any, text: str, add_special_tokens: bool) -> list[int]:
    """The token ids of `text` (the tokenizer's call, with or without its special tokens)."""
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def move_trailing_spaces(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the start of the continuation (lm-eval's rule).

    Example:
        >>> move_trailing_spaces("Answer: ", "yes")
        ('Answer:', ' yes')
    """
    spaces = len(context) - len(context.rstrip())
    if not spaces:
        return context, continuation
    return context[:-spaces], context[-spaces:] + continuation


def encode_pair(
    tokenizer: Any, context: str, continuation: str, *, add_special_tokens: bool = False
) -> TokenRequest:
    """Tokenize a request the way lm-eval-harness does for Hugging Face causal LMs.

    Raises:
        ValueError: The continuation gets no token of its own.
    """
    context, continuation = move_trailing_spaces(context, continuation)
    if not context:
        context_ids = [prefix_token_id(tokenizer)]
        continuation_ids = encode_text(tokenizer, continuation, add_special_tokens)
    else:
        whole_ids = encode_text(tokenizer, context + continuation, add_special_tokens)
        context_ids = encode_text(tokenizer, context, add_special_tokens)
        continuation_ids = whole_ids[len(context_ids) :]
    if not continuation_ids:
        raise ValueError(f"continuation {continuation!r} gets no token after {context[-40:]!r}")
    return TokenRequest(tuple(context_ids), tuple(continuation_ids))


def model_max_length(model: nn.Module, tokenizer: Any | None = None) -> int:
    """The longest input the model takes: its config's positions, else the tokenizer's or 2048."""
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**9 else 2048


def model_input(request: TokenRequest, max_length: int) -> list[int]:
    """The ids a request's forward reads: context + continuation but the last, cut on the left.

    Raises:
        ValueError: The continuation alone exceeds `max_length` tokens.
    """
    if len(request.continuation_ids) > max_length:
        raise ValueError(
            f"a continuation of {len(request.continuation_ids)} tokens exceeds the model's "
            f"{max_length}-token context"
        )
    return [*request.context_ids, *request.continuation_ids][-(max_length + 1) :][:-1]
