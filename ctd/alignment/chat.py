"""Chat examples: render messages with each side's own chat template and map to common bytes.

The common text of a conversation is its message contents concatenated. Each side's rendered
string is tokenized as the model sees it; a token inside one message's content keeps its exact
span there, a template-only token (role markers, BOS, end-of-turn) becomes a zero-width special
at its position, and a token that mixes template and content bytes becomes a special over the
content part (so the chunk there is dropped rather than misaligned).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ctd.alignment.encode import encode_batch
from ctd.alignment.ragged import TokenizedBatch

__all__ = ["encode_chat", "is_chat"]

Int64Array = npt.NDArray[np.int64]


def _render(tokenizer: object, messages: list[dict[str, str]]) -> str:
    apply = getattr(tokenizer, "apply_chat_template", None)
    if apply is None:
        raise TypeError(
            f"{type(tokenizer).__name__} has no chat template: pass a transformers tokenizer "
            "with `chat_template` for {'messages': ...} examples"
        )
    rendered = apply(messages, tokenize=False)
    if not isinstance(rendered, str):
        raise TypeError("apply_chat_template(tokenize=False) did not return a str")
    return rendered


def _content_starts(rendered: bytes, contents: list[bytes]) -> Int64Array:
    """Where each message content starts in the rendered bytes (in order). Shapes: (K,)."""
    starts, position = [], 0
    for index, content in enumerate(contents):
        found = rendered.find(content, position)
        if found < 0:
            raise ValueError(f"message {index}'s content does not appear verbatim in the template")
        starts.append(found)
        position = found + len(content)
    return np.array(starts, dtype=np.int64)


def _to_common(
    positions: Int64Array, rendered_starts: Int64Array, lengths: Int64Array, common: Int64Array
) -> Int64Array:
    """Map rendered byte positions to common-text positions (monotone). Shapes: (N,) -> (N,)."""
    index = np.searchsorted(rendered_starts, positions, "right") - 1
    safe = np.maximum(index, 0)
    mapped = common[safe] + np.minimum(positions - rendered_starts[safe], lengths[safe])
    return np.where(index >= 0, mapped, 0).astype(np.int64)


def encode_chat(
    tokenizer: object, conversations: Sequence[list[dict[str, str]]], *, loss_roles: set[str]
) -> tuple[TokenizedBatch, npt.NDArray[np.bool_]]:
    """Tokenize conversations with the tokenizer's own template, spans in common-text bytes.

    Returns:
        The batch (spans into the concatenated contents) and a loss mask that is True on tokens
        inside a message whose role is in `loss_roles`. Shapes: mask (M,).
    """
    rendered = [_render(tokenizer, list(messages)) for messages in conversations]
    raw = encode_batch(tokenizer, rendered, add_special_tokens=False)
    starts, ends = raw.byte_starts.copy(), raw.byte_ends.copy()
    special = raw.is_special.copy()
    loss_mask = np.zeros(len(raw.input_ids), dtype=np.bool_)
    num_text_bytes = np.zeros(len(rendered), dtype=np.int64)
    for row, (text, messages) in enumerate(zip(rendered, conversations, strict=True)):
        contents = [str(message["content"]).encode("utf-8") for message in messages]
        rendered_starts = _content_starts(text.encode("utf-8"), contents)
        lengths = np.array([len(content) for content in contents], dtype=np.int64)
        common = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        tokens = slice(int(raw.row_starts[row]), int(raw.row_starts[row + 1]))
        index = np.searchsorted(rendered_starts, raw.byte_starts[tokens], "right") - 1
        safe = np.maximum(index, 0)
        inside = (index >= 0) & (raw.byte_ends[tokens] <= rendered_starts[safe] + lengths[safe])
        inside &= raw.byte_ends[tokens] > raw.byte_starts[tokens]
        starts[tokens] = _to_common(raw.byte_starts[tokens], rendered_starts, lengths, common)
        ends[tokens] = _to_common(raw.byte_ends[tokens], rendered_starts, lengths, common)
        special[tokens] |= ~inside
        roles = np.array([message["role"] in loss_roles for message in messages], dtype=np.bool_)
        loss_mask[tokens] = inside & roles[safe] & ~raw.is_special[tokens]
        num_text_bytes[row] = int(lengths.sum())
    batch = TokenizedBatch(raw.input_ids, starts, ends, special, raw.row_starts, num_text_bytes)
    return batch, loss_mask


def is_chat(example: Any) -> bool:
    """Whether an example is a `{"messages": [...]}` conversation."""
    return isinstance(example, dict) and "messages" in example
