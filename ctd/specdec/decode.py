"""Speculative decoding of one prompt with a KV cache on both models.

Each block: the drafter proposes up to gamma tokens, one token per cached step; the target scores
its pending token plus all drafts in *one* cached step; `speculative_verify` (sampling) or
`greedy_verify` accepts a prefix and emits one more token; both caches are rolled back to the
accepted prefix (`CachedModel.rollback`), so nothing is ever re-encoded. Between blocks each model
keeps the committed tokens it has not yet fed (the target: the emitted token; the drafter: that
token's drafter ids, plus the last draft when every draft was accepted).

Reference: Leviathan et al. 2023 (arXiv 2211.17192), Chen et al. 2023 (arXiv 2302.01318);
cross-tokenizer drafts via `ctd.specdec.vocab.TokenIntersection` (Timor et al. 2025).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ctd.decoding.cached import CachedModel
from ctd.decoding.generate import eos_ids
from ctd.decoding.sampling import check_sampling_args, warp_probs
from ctd.specdec.verify import RandomSource, TorchRandom, greedy_verify, speculative_verify
from ctd.specdec.vocab import DraftVocabulary, SharedVocabulary

__all__ = ["SpecDecOutput", "speculative_generate"]


@dataclass
class SpecDecOutput:
    """What one speculative-decoding run produced and what it cost.

    Attributes:
        token_ids: the new target ids (EOS included when one ended the answer).
        accepted_per_block: accepted drafts in each block (one block = one target call).
        drafted_per_block: drafts proposed in each block (gamma, less near the end or after a
            drafted EOS).
        drafter_calls / target_calls: forward passes of each model, prefill included.
        drafter_seconds / target_seconds: wall time inside those calls.
        conversion_seconds: wall time converting between the vocabularies (cross-tokenizer).
    """

    token_ids: list[int] = field(default_factory=list)
    accepted_per_block: list[int] = field(default_factory=list)
    drafted_per_block: list[int] = field(default_factory=list)
    drafter_calls: int = 0
    target_calls: int = 0
    drafter_seconds: float = 0.0
    target_seconds: float = 0.0
    conversion_seconds: float = 0.0


@dataclass
class _Drafter:
    model: CachedModel
    vocab: DraftVocabulary
    pending: list[int]
    last_id: int


def _feed(model: CachedModel, ids: Sequence[int], device: torch.device) -> torch.Tensor:
    """Logits (k, V) of feeding `ids` to a model: its prefill when the cache is empty."""
    tensor = torch.tensor([list(ids)], dtype=torch.long, device=device)
    logits = model.step(tensor) if model.length else model.prefill(tensor)
    return logits[0]


def _start(model: CachedModel, prompt: Sequence[int], device: torch.device) -> list[int]:
    """Prefill all prompt tokens but the last; the last is pending."""
    if not prompt:
        raise ValueError("speculative decoding needs a non-empty prompt")
    model.reset()
    if len(prompt) > 1:
        _feed(model, prompt[:-1], device)
    return [prompt[-1]]


def _draft(
    drafter: _Drafter,
    count: int,
    stop: set[int],
    temperature: float,
    top_p: float,
    random: RandomSource,
    out: SpecDecOutput,
) -> tuple[list[int], list[int], list[torch.Tensor]]:
    """Up to `count` drafts: (drafter ids, target ids, drafter-id distributions)."""
    drafter_ids: list[int] = []
    target_ids: list[int] = []
    probs: list[torch.Tensor] = []
    feed = drafter.pending
    device = drafter.model.device
    for _ in range(count):
        begin = time.perf_counter()
        logits = _feed(drafter.model, feed, device)[-1]
        out.drafter_calls += 1
        q = drafter.vocab.draft_probs(logits, temperature, top_p)
        token = int(q.argmax()) if temperature == 0 else random.categorical(q)
        middle = time.perf_counter()
        target_id = drafter.vocab.to_target_id(token)
        out.drafter_seconds += middle - begin
        out.conversion_seconds += time.perf_counter() - middle
        drafter_ids.append(token)
        target_ids.append(target_id)
        probs.append(q)
        feed = [token]
        if target_id in stop:
            break
    return drafter_ids, target_ids, probs


def _resync_drafter(
    drafter: _Drafter, drafter_ids: list[int], accepted: int, emitted: int
) -> float:
    """Roll the drafter back to the accepted drafts and queue what it has not seen; seconds."""
    begin = time.perf_counter()
    drafted = len(drafter_ids)
    if drafted == 0:
        unfed = drafter.pending
    elif accepted == drafted:
        unfed = [drafter_ids[-1]]  # the last draft was never fed
    else:
        drafter.model.rollback(drafted - 1 - accepted)
        unfed = []
    if accepted:
        drafter.last_id = drafter_ids[accepted - 1]
    unfed = unfed + drafter.vocab.to_drafter_ids([emitted])
    if not unfed:  # a target token with no drafter spelling: re-feed the drafter's last token
        drafter.model.rollback(1)
        unfed = [drafter.last_id]
    drafter.pending = unfed
    drafter.last_id = unfed[-1]
    return time.perf_counter() - begin


def speculative_generate(
    target: CachedModel,
    drafter: CachedModel,
    prompt_ids: Sequence[int],
    *,
    gamma: int,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    eos_token_id: int | Sequence[int] | None = None,
    vocabulary: DraftVocabulary | None = None,
    drafter_prompt_ids: Sequence[int] | None = None,
    random: RandomSource | None = None,
) -> SpecDecOutput:
    """Decode one prompt speculatively; the output is distributed as the target's own decoding.

    Args:
        target: the verifying model.
        drafter: the drafting model.
        prompt_ids: the prompt in target ids.
        gamma: drafts per block (>= 1).
        max_new_tokens: the most new target tokens.
        temperature: 0 = greedy verification; else speculative sampling at this temperature
            (the same warping on both models, as the lossless rule requires).
        top_p: nucleus mass, applied on both models.
        eos_token_id: target id(s) that end the answer.
        vocabulary: drafter <-> target conversions; default: a shared tokenizer.
        drafter_prompt_ids: the prompt in drafter ids (default: `prompt_ids`).
        random: the random source (default: `TorchRandom(0)`).

    Raises:
        ValueError: gamma < 1, max_new_tokens < 0, bad sampling arguments or an empty prompt.
    """
    if gamma < 1:
        raise ValueError(f"gamma must be at least 1, got {gamma}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    check_sampling_args(temperature, top_p)
    vocabulary = vocabulary or SharedVocabulary()
    random = random or TorchRandom(0)
    stop = set(eos_ids(eos_token_id))
    out = SpecDecOutput()
    device = target.device
    target_pending = _start(target, list(prompt_ids), device)
    drafter_prompt = list(prompt_ids if drafter_prompt_ids is None else drafter_prompt_ids)
    draft_state = _Drafter(drafter, vocabulary, _start(drafter, drafter_prompt, drafter.device), 0)
    draft_state.last_id = draft_state.pending[-1]
    out.target_calls, out.drafter_calls = int(len(prompt_ids) > 1), int(len(drafter_prompt) > 1)
    while len(out.token_ids) < max_new_tokens:
        count = min(gamma, max_new_tokens - len(out.token_ids) - 1)
        drafter_ids, drafts, draft_probs = _draft(
            draft_state, count, stop, temperature, top_p, random, out
        )
        begin = time.perf_counter()
        target_logits = _feed(target, target_pending + drafts, device)
        out.target_calls += 1
        out.target_seconds += time.perf_counter() - begin
        if temperature == 0:
            accepted, emitted = greedy_verify(target_logits, drafts)
        else:
            target_probs = warp_probs(target_logits, temperature=temperature, top_p=top_p)
            begin = time.perf_counter()
            q = vocabulary.to_target_probs(torch.stack(draft_probs)) if drafts else target_probs[:0]
            out.conversion_seconds += time.perf_counter() - begin
            accepted, emitted = speculative_verify(target_probs, q, drafts, random)
        target.rollback(len(drafts) - accepted)
        target_pending = [emitted]
        out.accepted_per_block.append(accepted)
        out.drafted_per_block.append(len(drafts))
        new = [*drafts[:accepted], emitted]
        ends = [i for i, token in enumerate(new) if token in stop]
        out.token_ids.extend(new[: ends[0] + 1] if ends else new)
        if ends:
            break
        out.conversion_seconds += _resync_drafter(draft_state, drafter_ids, accepted, emitted)
    out.token_ids = out.token_ids[:max_new_tokens]
    return out
