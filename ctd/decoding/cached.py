"""A causal LM plus its KV cache: prefill, step, rollback.

One small object that speculative decoding (drafter and target), lockstep ensembles (one per
member) and `ctd generate` all step token by token. Rollback drops rejected draft positions
from the cache with transformers' `DynamicCache.crop`, so nothing is re-encoded. The cache is
built from the model's config (sliding-window layers included, as in Gemma 3) and records its
past after the prefill, so a rollback is exact across the window too.

The cache holds one row per batch item and every row has the same length: callers that need
ragged rows left-pad the prompt and pass the `attention_mask`; the mask is kept and extended
on every step.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache

__all__ = ["CachedModel"]


class CachedModel:
    """A Hugging Face causal LM with a `DynamicCache` that can be extended and cut back.

    Args:
        model: a `PreTrainedModel` with a causal LM head (`model(input_ids, past_key_values=...,
            use_cache=True).logits`). It is put in eval mode; gradients are never tracked.

    Attributes:
        model: the wrapped model.
        forward_calls: how many forward passes ran since construction (for cost accounting).
    """

    def __init__(self, model: Any) -> None:
        self.model = model.eval()
        self.forward_calls = 0
        self._cache: DynamicCache | None = None
        self._attention_mask: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """Positions in the cache (the same for every row), 0 before `prefill`."""
        return 0 if self._attention_mask is None else int(self._attention_mask.shape[1])

    @property
    def device(self) -> torch.device:
        """The model's device."""
        device: torch.device = next(self.model.parameters()).device
        return device

    def reset(self) -> None:
        """Forget the cache; the next call must be `prefill`."""
        self._cache = None
        self._attention_mask = None

    def prefill(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Start a fresh cache from a prompt and return the logits of its positions.

        Shapes: ids (B, T) long; attention_mask (B, T) (1 = real, 0 = left padding); returns
        (B, T, V) float, position t predicting token t + 1.

        Raises:
            ValueError: if `ids` is not 2-D with at least one position, or the mask's shape
                differs from `ids`'.
        """
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise ValueError(
                f"prefill needs ids of shape (B, T) with T >= 1, got {tuple(ids.shape)}"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(ids)
        if attention_mask.shape != ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} "
                f"!= ids shape {tuple(ids.shape)}"
            )
        self._cache = DynamicCache(config=self.model.config)
        self._attention_mask = attention_mask.to(device=ids.device, dtype=torch.long)
        logits = self._forward(ids)
        # after the prefill (as HF does), so a long prompt does not keep its whole past in
        # sliding-window layers; from here on rollback works past the window too
        self._cache.activate_past_recording()  # type: ignore[no-untyped-call]
        return logits

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Append k tokens to every row and return their logits.

        Shapes: ids (B, k) long, k >= 1; returns (B, k, V).

        Raises:
            RuntimeError: before `prefill`.
            ValueError: if the batch size differs from the cache's or k < 1.
        """
        if self._attention_mask is None:
            raise RuntimeError("step before prefill: call prefill(prompt_ids) first")
        if ids.dim() != 2 or ids.shape[1] == 0 or ids.shape[0] != self._attention_mask.shape[0]:
            raise ValueError(
                f"step needs ids of shape ({self._attention_mask.shape[0]}, k >= 1), "
                f"got {tuple(ids.shape)}"
            )
        new_mask = self._attention_mask.new_ones(ids.shape)
        self._attention_mask = torch.cat([self._attention_mask, new_mask], dim=1)
        return self._forward(ids)

    def rollback(self, num_tokens: int) -> None:
        """Drop the last `num_tokens` positions (rejected drafts) from the cache.

        Raises:
            ValueError: if `num_tokens` is negative or more than the cache holds.
        """
        if num_tokens < 0 or num_tokens > self.length:
            raise ValueError(f"cannot roll back {num_tokens} of {self.length} cached positions")
        self.truncate(self.length - num_tokens)

    def truncate(self, length: int) -> None:
        """Keep only the first `length` positions of the cache.

        Raises:
            ValueError: if `length` is negative or longer than the cache.
        """
        if length < 0 or length > self.length:
            raise ValueError(f"cannot truncate a cache of {self.length} positions to {length}")
        if self._cache is None or self._attention_mask is None or length == self.length:
            return
        self._cache.crop(length - self.length)  # transformers 5.x: a negative count to remove
        self._attention_mask = self._attention_mask[:, :length]

    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        assert self._attention_mask is not None
        mask = self._attention_mask
        # positions count real tokens only, so a left-padded row starts at position 0
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)[:, -ids.shape[1] :]
        with torch.no_grad():
            output = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=self._cache,
                use_cache=True,
            )
        self.forward_calls += 1
        logits: torch.Tensor = output.logits
        return logits
