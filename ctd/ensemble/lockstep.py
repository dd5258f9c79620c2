"""Lockstep ensembles of models that share a tokenizer: one pooled distribution per token.

Every member reads the same tokens; at each position their next-token distributions are pooled
by a weighted mean of probabilities (`mean_prob`, the default: the linear pool of the ALM paper,
Minixhofer et al. 2025, arXiv 2503.20083, section 5, tokenkit's `eval_lockstep.py`) or of
log-probabilities renormalised (`mean_logprob`, a geometric pool / product of experts).

`LockstepEnsemble` keeps one KV cache per member (`ctd.decoding.CachedModel`) and offers the same
`prefill` / `step` / `rollback` / `truncate` interface, returning the pooled *log-probabilities*
where a model returns logits (softmax of a log-distribution is the distribution), so
`ctd.decoding.generate` decodes an ensemble exactly as it decodes one model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor

from ctd.alignment.token_bytes import token_bytes
from ctd.decoding import CachedModel, generate
from ctd.ensemble.weights import check_combine, normalized_weights

__all__ = ["LockstepEnsemble", "check_shared_tokenizer", "combine_logprobs"]


def combine_logprobs(member_logits: Tensor, weights: Tensor, combine: str = "mean_prob") -> Tensor:
    """Pool M members' next-token distributions into one log-distribution.

    `mean_prob`: log sum_i w_i softmax(z_i). `mean_logprob`: log_softmax(sum_i w_i
    log_softmax(z_i)). Members with weight 0 are left out (no 0 * -inf).

    Shapes: member_logits (M, ..., V); weights (M,) summing to 1; returns (..., V) in the
        logits' dtype (float32 at least).
    """
    check_combine(combine)
    dtype = torch.promote_types(member_logits.dtype, torch.float32)
    kept = weights > 0
    logprobs = torch.log_softmax(member_logits[kept].to(dtype), dim=-1)  # (M', ..., V)
    return _pool(logprobs, weights[kept], combine)


def _pool(logprobs: Tensor, weights: Tensor, combine: str) -> Tensor:
    """Pool the normalised log-probs of members with positive weights.

    Shapes: logprobs (M, ..., V), weights (M,); returns (..., V).
    """
    used = weights.to(dtype=logprobs.dtype, device=logprobs.device)
    shape = (-1,) + (1,) * (logprobs.dim() - 1)
    if combine == "mean_prob":
        return torch.logsumexp(logprobs + used.log().view(shape), dim=0)
    return torch.log_softmax((logprobs * used.view(shape)).sum(0), dim=-1)


def check_shared_tokenizer(tokenizers: Sequence[Any], names: Sequence[str] | None = None) -> int:
    """Check that every tokenizer maps every id to the same bytes; return the id count V.

    Raises:
        ValueError: a member's tokenizer has another vocabulary size, or an id whose bytes or
            special flag differ from member 0's (lockstep needs one shared tokenizer).
    """
    labels = list(names) if names is not None else [f"member {i}" for i in range(len(tokenizers))]
    tables = [token_bytes(tokenizer) for tokenizer in tokenizers]
    first = tables[0]
    for label, table in zip(labels[1:], tables[1:], strict=True):
        if table.vocab_size != first.vocab_size:
            raise ValueError(
                f"lockstep members must share a tokenizer: {label} has {table.vocab_size} ids, "
                f"{labels[0]} has {first.vocab_size} (use --mode bytes for different tokenizers)"
            )
        for index, (mine, theirs) in enumerate(zip(table.bytes_of, first.bytes_of, strict=True)):
            if mine != theirs or table.is_special[index] != first.is_special[index]:
                raise ValueError(
                    f"lockstep members must share a tokenizer: id {index} is {mine!r} in "
                    f"{label} but {theirs!r} in {labels[0]} (use --mode bytes)"
                )
    return first.vocab_size


def _output_rows(model: Any) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


class LockstepEnsemble:
    """Models that share a tokenizer, stepped together, one KV cache each.

    Args:
        models: the members (Hugging Face causal LMs); put in eval mode.
        weights: mixture weights (normalised; uniform when None).
        combine: `mean_prob` (default) or `mean_logprob`.
        vocab_size: ids kept from every member's logits (default: the fewest output rows of
            any member), so that members whose heads are padded differently line up.

    Raises:
        ValueError: bad weights or combine, no member, or a member with fewer output rows than
            `vocab_size`.
    """

    def __init__(
        self,
        models: Sequence[Any],
        weights: Sequence[float] | None = None,
        *,
        combine: str = "mean_prob",
        vocab_size: int | None = None,
    ) -> None:
        check_combine(combine)
        self.weights = normalized_weights(weights, len(models))
        self.combine = combine
        rows = [_output_rows(model) for model in models]
        self.vocab_size = min(rows) if vocab_size is None else vocab_size
        if self.vocab_size > min(rows):
            raise ValueError(f"vocab_size {self.vocab_size} exceeds a member's {min(rows)} rows")
        self.members = [CachedModel(model) for model in models]

    @property
    def length(self) -> int:
        """Positions in the caches (the same for every member)."""
        return self.members[0].length

    @property
    def device(self) -> torch.device:
        """The first member's device."""
        return self.members[0].device

    @property
    def forward_calls(self) -> int:
        """Forward passes of all members together."""
        return sum(member.forward_calls for member in self.members)

    def pool(self, member_logits: Sequence[Tensor]) -> Tensor:
        """Pooled log-probabilities of the members' logits (cut to `vocab_size`).

        Shapes: member_logits M x (..., V_i); returns (..., vocab_size).
        """
        stacked = torch.stack([logits[..., : self.vocab_size] for logits in member_logits])
        return combine_logprobs(stacked, self.weights, self.combine)

    def prefill(self, ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Fresh caches from a prompt; the pooled log-probs of its positions.

        Shapes: ids (B, T); returns (B, T, V), position t predicting token t + 1.
        """
        return self.pool([member.prefill(ids, attention_mask) for member in self.members])

    def step(self, ids: Tensor) -> Tensor:
        """Append k tokens to every member; the pooled log-probs. Shapes: (B, k) -> (B, k, V)."""
        return self.pool([member.step(ids) for member in self.members])

    def rollback(self, num_tokens: int) -> None:
        """Drop the last `num_tokens` positions from every member's cache."""
        for member in self.members:
            member.rollback(num_tokens)

    def truncate(self, length: int) -> None:
        """Keep the first `length` positions of every member's cache."""
        for member in self.members:
            member.truncate(length)

    def reset(self) -> None:
        """Forget every cache."""
        for member in self.members:
            member.reset()

    def generate(self, prompt_ids: Tensor, max_new_tokens: int, **options: Any) -> Tensor:
        """Decode from the pooled distribution: `ctd.decoding.generate` on this ensemble.

        Options are those of `generate` (attention_mask, temperature, top_p, eos_token_id,
        pad_token_id, generator). Shapes: prompt_ids (B, T); returns (B, N) long.
        """
        # the ensemble has CachedModel's prefill/step interface (duck-typed)
        return generate(cast(CachedModel, self), prompt_ids, max_new_tokens, **options)

    def score(
        self, input_ids: Tensor, attention_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Teacher-forced log-prob of every token under each member and under the ensemble.

        Position t holds log p(x_t | x_<t); position 0 (no context) holds 0. Right padding
        is fine (its positions are whatever the mask makes them; mask them out).

        Shapes: input_ids (B, T); returns member_logprobs (M, B, T) and ensemble_logprobs
            (B, T), float32 at least.
        """
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        targets = input_ids[:, 1:].unsqueeze(-1)  # (B, T-1, 1)
        member_lp = []
        with torch.no_grad():
            for member in self.members:
                logits = member.model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]
                dtype = torch.promote_types(logits.dtype, torch.float32)
                member_lp.append(torch.log_softmax(logits[..., : self.vocab_size].to(dtype), -1))
            kept = self.weights > 0
            picked = torch.stack(
                [lp.gather(-1, targets)[..., 0] for lp in member_lp]
            )  # (M, B, T-1)
            if self.combine == "mean_prob":  # only the targets' probabilities are needed
                pooled = _pool(picked[kept][..., None], self.weights[kept], self.combine)[..., 0]
            else:
                used = torch.stack([lp for lp, keep in zip(member_lp, kept, strict=True) if keep])
                pooled = _pool(used, self.weights[kept], self.combine).gather(-1, targets)[..., 0]
        pad = torch.nn.functional.pad
        return pad(picked, (1, 0)), pad(pooled, (1, 0))
