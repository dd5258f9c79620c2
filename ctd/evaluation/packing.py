"""Requests that share a context, scored in one row: the context once, each continuation after it.

Every choice of a multiple-choice question repeats the question's context (ARC-Easy: 4 choices,
HellaSwag: 4). Scoring each (context, continuation) pair in its own row runs the context once
per choice. Here the requests of one context are packed into one row, `context + cont_1[:-1] +
cont_2[:-1] + ...`, with a 4-D attention mask under which each continuation's tokens attend to
the context and to their own earlier tokens only, at the positions they would have alone
(`len(context) + j`): each continuation gets the same hidden states as in its own row, and the
context is computed once (on the 500-question PIQA / ARC-Easy / HellaSwag / LAMBADA sets with the
Qwen2 tokenizer, 217,300 positions become 126,408). The first continuation token of every choice
is predicted from the context's last position.

A request whose input is cut on the left (`model_input`) is packed by the prefix it actually
reads. Requests left out of the rows, for the plain scorer (the model's own causal mask): one
that shares its prefix with no other (LAMBADA, rolling text windows), since causal attention is
faster than attention under a custom mask; and, for a model with sliding-window layers
(Gemma 3), which would see the whole context through the one mask, one longer than the window.
This is the prefix sharing of tree attention (SpecInfer, Miao et al. 2024, arXiv 2305.09781)
applied to log-likelihood scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ctd.evaluation.requests import TokenRequest, model_input

__all__ = ["PackedRow", "pack_requests", "packed_hidden"]


@dataclass(frozen=True)
class PackedRow:
    """A prefix and the continuations read after it, as one input row.

    Attributes:
        prefix_ids: the context ids every packed request reads (cut on the left if needed).
        requests: indices of the packed requests (into the list given to `pack_requests`).
        segments: per request, its continuation ids but the last (what its positions read).
    """

    prefix_ids: tuple[int, ...]
    requests: tuple[int, ...]
    segments: tuple[tuple[int, ...], ...]

    @property
    def length(self) -> int:
        """Positions of the row."""
        return len(self.prefix_ids) + sum(len(segment) for segment in self.segments)


Ids = tuple[int, ...]


def _prefix_and_segment(request: TokenRequest, max_length: int) -> tuple[Ids, Ids]:
    """The prefix a request's input reads and its continuation but the last token."""
    ids = model_input(request, max_length)
    segment = tuple(request.continuation_ids[:-1])
    return tuple(ids[: len(ids) - len(segment)]), segment


def pack_requests(
    requests: Sequence[TokenRequest], max_length: int, window: int | None = None
) -> tuple[list[PackedRow], list[int]]:
    """Group requests by the prefix they read into rows, in order of first appearance.

    Returns the rows and the indices of the requests left out, to be scored one to a row with
    the model's own causal mask: those whose input exceeds `window` positions, and those that
    share their prefix with no other request (a custom mask only slows their attention down).

    Raises:
        ValueError: A continuation longer than `max_length` (`model_input`).
    """
    groups: dict[Ids, list[tuple[int, Ids]]] = {}
    left_out: list[int] = []
    for index, request in enumerate(requests):
        prefix, segment = _prefix_and_segment(request, max_length)
        if window is not None and len(prefix) + len(segment) > window:
            left_out.append(index)
        else:
            groups.setdefault(prefix, []).append((index, segment))
    rows = []
    for prefix, members in groups.items():
        if len(members) == 1:  # nothing shared: the plain causal path is faster
            left_out.append(members[0][0])
        else:
            indices, segments = zip(*members, strict=True)
            rows.append(PackedRow(prefix, tuple(indices), tuple(segments)))
    return rows, sorted(left_out)


def _row_layout(row: PackedRow) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Ids, positions and each segment's (first slot, length) of one row."""
    ids, positions = list(row.prefix_ids), list(range(len(row.prefix_ids)))
    spans = []
    for segment in row.segments:
        spans.append((len(ids), len(segment)))
        ids += segment
        positions += range(len(row.prefix_ids), len(row.prefix_ids) + len(segment))
    return ids, positions, spans


def _row_mask(prefix_length: int, spans: Sequence[tuple[int, int]], length: int) -> Tensor:
    """Which slots each slot may attend to.

    The prefix attends causally, each segment to the prefix and causally to itself; slots past
    the row attend to themselves (padding).

    Shapes: returns (length, length) bool.
    """
    allowed = torch.zeros(length, length, dtype=torch.bool)
    causal = torch.ones(prefix_length, prefix_length, dtype=torch.bool).tril()
    allowed[:prefix_length, :prefix_length] = causal
    for start, size in spans:
        allowed[start : start + size, :prefix_length] = True
        block = torch.ones(size, size, dtype=torch.bool).tril()
        allowed[start : start + size, start : start + size] = block
    used = prefix_length + sum(size for _, size in spans)
    padding = torch.arange(used, length)
    allowed[padding, padding] = True
    return allowed


def packed_hidden(
    model: nn.Module, rows: Sequence[PackedRow], requests: Sequence[TokenRequest]
) -> tuple[Tensor, Tensor, list[int]]:
    """Last hidden states that predict each continuation token of the rows' requests.

    Returns the hidden rows and targets grouped by request, in row then packing order, and
    that order of request indices.

    Shapes: returns hidden_rows (N, d), targets (N,) long, N = the requests' continuation tokens.
    """
    device = next(model.parameters()).device
    dtype = model.get_output_embeddings().weight.dtype  # type: ignore[operator]
    length = max(row.length for row in rows)
    input_ids = torch.zeros(len(rows), length, dtype=torch.long)
    position_ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.full((len(rows), 1, length, length), torch.finfo(dtype).min, dtype=dtype)
    batch_rows: list[int] = []
    slots: list[int] = []
    targets: list[int] = []
    order: list[int] = []
    for b, row in enumerate(rows):
        ids, positions, spans = _row_layout(row)
        input_ids[b, : len(ids)] = torch.tensor(ids)
        position_ids[b, : len(ids)] = torch.tensor(positions)
        position_ids[b, len(ids) :] = torch.arange(length - len(ids))
        mask[b, 0].masked_fill_(_row_mask(len(row.prefix_ids), spans, length), 0.0)
        for index, (start, size) in zip(row.requests, spans, strict=True):
            batch_rows += [b] * (size + 1)
            slots += [len(row.prefix_ids) - 1, *range(start, start + size)]
            targets += requests[index].continuation_ids
            order.append(index)
    base: Any = model.base_model
    hidden = base(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=position_ids.to(device),
    ).last_hidden_state  # (B, T, d)
    picked = hidden[torch.tensor(batch_rows), torch.tensor(slots)]
    return picked, torch.tensor(targets, device=device), order
