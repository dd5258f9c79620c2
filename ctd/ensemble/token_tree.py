"""Many token prefixes of one context in one KV cache: tree attention, one forward per step.

A byte LM's beam holds several token prefixes that branch off one another. Rather than one
cache per prefix (a deep copy at every branch and one forward per new token), every token
ever committed gets one slot of a single cache row, and a new token attends only to the slots
of its own ancestors (a 4-D additive mask) at the position of its depth: the tree attention
of SpecInfer (Miao et al. 2024, arXiv 2305.09781) and Medusa (Cai et al. 2024,
arXiv 2401.10774), here used to extend B prefixes by one token each in one forward. Slots no
live prefix uses are dropped by `compact`. Further contexts can join the same cache
(`add_context`: each attends only to itself), so that the prefixes of several texts grow in one
forward: one read of the weights for all of them.

Sliding-window layers (Gemma 3) see the full ancestry through the mask, which is what they see
while a prefix is shorter than the window; a deeper prefix is refused.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache

from ctd.evaluation.downstream import sliding_window

__all__ = ["TokenTree"]


class TokenTree:
    """A context and the token prefixes grown from it, sharing one cache.

    A prefix is named by its *path*: the cache slots of the context and of its tokens, in
    order (its length is the next token's position).

    Args:
        model: a Hugging Face causal LM (its `model(input_ids, attention_mask, position_ids,
            cache)` takes a 4-D mask, as transformers 5 models do).
        context: the ids every prefix starts with (BOS).

    Attributes:
        root_path: the context's path.
        root_logits: the logits after the context. Shapes: (V,).
        forward_calls: forward passes so far (the context's included).
        tokens_forwarded: token positions computed so far.
        compactions: how many times `compact` renumbered the slots (paths from before are
            stale).

    Raises:
        ValueError: an empty context.
    """

    def __init__(self, model: Any, context: Sequence[int]) -> None:
        if not context:
            raise ValueError("a token tree needs a non-empty context")
        self.model = model.eval()
        self.device: torch.device = next(model.parameters()).device
        self.cache = DynamicCache()
        self.size = 0
        self.max_depth: int | None = sliding_window(model)
        ids = torch.tensor([list(context)], device=self.device)
        logits = self._forward(ids, torch.ones_like(ids), torch.arange(len(context))[None])
        self.root_path = list(range(len(context)))
        self.root_logits = logits[0, -1]
        self.forward_calls = 1
        self.tokens_forwarded = len(context)
        self.compactions = 0

    def add_context(self, context: Sequence[int]) -> tuple[torch.Tensor, list[int]]:
        """Another context in the same cache, at positions 0.., seeing none of the other slots.

        Shapes: returns the logits after it (V,) and its path.

        Raises:
            ValueError: an empty context, or one as long as the model's sliding window (the
                4-D mask would let its later tokens see beyond the window).
        """
        if not context:
            raise ValueError("a token tree needs a non-empty context")
        count = len(context)
        if self.max_depth is not None and count > self.max_depth:
            raise ValueError(
                f"a context of {count} tokens is longer than the sliding window ({self.max_depth})"
            )
        start = self.size
        mask = self._blocked_mask(count, start + count)
        allowed = torch.ones(count, count, dtype=torch.bool).tril()
        mask[0, 0, :, start:] = mask[0, 0, :, start:].masked_fill(allowed, 0.0)
        logits = self._forward(
            torch.tensor([list(context)], device=self.device),
            mask.to(self.device),
            torch.arange(count)[None],
        )
        self.forward_calls += 1
        self.tokens_forwarded += count
        return logits[0, -1], list(range(start, start + count))

    def _blocked_mask(self, rows: int, columns: int) -> torch.Tensor:
        """An additive 4-D mask that lets no row see any slot yet. Shapes: (1, 1, rows, columns)."""
        dtype = self.model.get_output_embeddings().weight.dtype
        return torch.full((1, 1, rows, columns), torch.finfo(dtype).min, dtype=dtype)

    def extend(
        self, paths: Sequence[Sequence[int]], tokens: Sequence[int]
    ) -> tuple[torch.Tensor, list[list[int]]]:
        """Append token i after prefix i, for all i in one forward.

        Shapes: returns logits (B, V) after each new token, and the B new paths.

        Raises:
            ValueError: no token, as many paths as tokens not given, or a prefix as deep as
                the model's sliding window.
        """
        if not tokens or len(paths) != len(tokens):
            raise ValueError(f"extend needs one path per token, got {len(paths)} and {len(tokens)}")
        depths = [len(path) for path in paths]
        if self.max_depth is not None and max(depths) >= self.max_depth:
            raise ValueError(
                f"a prefix of {max(depths)} tokens reaches the sliding window ({self.max_depth})"
            )
        count, total = len(tokens), self.size + len(tokens)
        mask = self._blocked_mask(count, total)
        for row, path in enumerate(paths):
            mask[0, 0, row, torch.tensor([*path, self.size + row])] = 0.0
        start = self.size
        logits = self._forward(
            torch.tensor([list(tokens)], device=self.device),
            mask.to(self.device),
            torch.tensor([depths]),
        )
        self.forward_calls += 1
        self.tokens_forwarded += count
        return logits[0], [[*path, start + row] for row, path in enumerate(paths)]

    def fork(self) -> TokenTree:
        """A copy with its own cache (the same model), to extend apart from this one."""
        twin = copy.copy(self)
        twin.cache = copy.deepcopy(self.cache)
        return twin

    def compact(self, paths: Sequence[Sequence[int]]) -> list[list[int]]:
        """Keep only the slots of `paths` (the live prefixes); returns their new paths."""
        keep = sorted({slot for path in paths for slot in path})
        if len(keep) == self.size:
            return [list(path) for path in paths]
        index = torch.tensor(keep, device=self.device)
        layers: list[Any] = list(self.cache.layers)  # DynamicLayer: keys/values (1, H, T, D)
        for layer in layers:
            layer.keys = layer.keys.index_select(-2, index)
            layer.values = layer.values.index_select(-2, index)
        new_slot = {old: new for new, old in enumerate(keep)}
        self.size = len(keep)
        self.compactions += 1
        return [[new_slot[slot] for slot in path] for path in paths]

    def _forward(
        self, ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        with torch.no_grad():
            output = self.model(
                input_ids=ids,
                attention_mask=attention_mask,
                position_ids=positions.to(self.device),
                cache=self.cache,
                use_cache=True,
            )
        self.size += int(ids.shape[1])
        logits: torch.Tensor = output.logits
        return logits
