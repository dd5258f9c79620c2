"""Plain autoregressive decoding on a `CachedModel`: the baseline speculative decoding beats.

Greedy decoding here equals Hugging Face `model.generate(do_sample=False)` token for token
(tests/decoding/test_generate.py checks it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ctd.decoding.cached import CachedModel
from ctd.decoding.sampling import sample, warp_probs

__all__ = ["eos_ids", "generate"]


def eos_ids(eos_token_id: int | Sequence[int] | None) -> list[int]:
    """The end-of-sequence ids as a list (a model may have several, as Gemma 3 does)."""
    if eos_token_id is None:
        return []
    if isinstance(eos_token_id, int):
        return [eos_token_id]
    return [int(i) for i in eos_token_id]


def next_tokens(
    logits: torch.Tensor,
    *,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The next token of each row: argmax at temperature 0, else a sample from `warp_probs`.

    Shapes: logits (B, V); returns (B,) long.
    """
    if temperature == 0:
        return logits.argmax(-1)
    return sample(warp_probs(logits, temperature=temperature, top_p=top_p), generator)


def generate(
    cached_model: CachedModel,
    prompt_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    attention_mask: torch.Tensor | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Decode up to `max_new_tokens` tokens per row with one cached forward per token.

    A row that emitted an EOS id is finished: its later positions hold `pad_token_id` (default:
    the first EOS id), as in HF `generate`. Decoding stops when every row is finished.

    Args:
        cached_model: the model; its cache is reset by the prefill.
        prompt_ids: the prompts, left-padded when ragged (with `attention_mask`).
        max_new_tokens: the most tokens to add per row (>= 0).
        attention_mask: 1 = real token, 0 = left padding.
        temperature: 0 = greedy; else sampling from softmax(logits / temperature).
        top_p: nucleus mass kept when sampling.
        eos_token_id: id(s) that end a row.
        pad_token_id: filler after a row ended.
        generator: random source for sampling.

    Shapes: prompt_ids (B, T); returns (B, N) long new tokens, N <= max_new_tokens.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    stop_ids = eos_ids(eos_token_id)
    pad = pad_token_id if pad_token_id is not None else (stop_ids[0] if stop_ids else 0)
    stop = torch.tensor(stop_ids, dtype=torch.long, device=prompt_ids.device)
    finished = torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)
    new_tokens: list[torch.Tensor] = []
    if max_new_tokens == 0:
        return prompt_ids.new_zeros((prompt_ids.shape[0], 0))
    logits = cached_model.prefill(prompt_ids, attention_mask)[:, -1]
    for index in range(max_new_tokens):
        token = next_tokens(logits, temperature=temperature, top_p=top_p, generator=generator)
        token = torch.where(finished, torch.full_like(token, pad), token)
        new_tokens.append(token)
        finished |= torch.isin(token, stop)
        if bool(finished.all()) or index == max_new_tokens - 1:
            break
        logits = cached_model.step(token[:, None])[:, -1]
    return torch.stack(new_tokens, dim=1)
