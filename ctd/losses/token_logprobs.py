"""Main-path token log-probabilities, plus the outcome-debiasing quantities of ALM.

Position ``t`` of every output holds log p(x_t | x_<t); position 0 has no prediction and is 0.
``space_logprobs[:, t]`` and ``eos_logprobs[:, t]`` are read from the distribution at position
``t``, i.e. they describe the token *after* ``t`` (Minixhofer, Vulić, Ponti 2025, arXiv
2503.20083, Sec. 3, "outcome chunk debiasing").
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from ctd.losses._checks import (
    check_index_range,
    check_ndim,
    check_no_nan,
    check_same_batch,
    check_shape,
)
from ctd.losses._chunked_head import chunked_head_logprobs
from ctd.losses._reduce import compute_dtype


class TokenLogprobs(NamedTuple):
    """Per-token log-probabilities returned by :func:`token_logprobs_from_hidden`."""

    logprobs: Tensor  # (B, T): log p(x_t | x_<t), 0 at t = 0
    space_logprobs: Tensor | None  # (B, T): log P(x_{t+1} is space-like or special | x_<=t)
    eos_logprobs: Tensor | None  # (B, T): log P(x_{t+1} = EOS | x_<=t)


def _check_vocab_args(
    vocab_size: int, space_token_mask: Tensor | None, eos_token_id: int | None
) -> None:
    if space_token_mask is not None:
        check_shape("space_token_mask", space_token_mask, (vocab_size,))
        if space_token_mask.dtype != torch.bool:
            raise TypeError(f"space_token_mask must be bool, got {space_token_mask.dtype}")
    if eos_token_id is not None and not 0 <= eos_token_id < vocab_size:
        raise ValueError(f"eos_token_id={eos_token_id} is outside the vocabulary [0, {vocab_size})")


def _shift_in(next_logprobs: Tensor) -> Tensor:
    """Move log p(x_{t+1} | x_<=t) from position t to t+1; position 0 becomes 0."""
    return F.pad(next_logprobs[:, :-1], (1, 0))  # (B, T)


def token_logprobs_from_logits(
    logits: Tensor,
    input_ids: Tensor,
    *,
    logit_softcap: float | None = None,
    space_token_mask: Tensor | None = None,
    eos_token_id: int | None = None,
) -> TokenLogprobs:
    """Plain (materialising) main-path log-probs plus space and EOS log-probs.

    The reference for :func:`token_logprobs_from_hidden`, and the simplest path for small models.

    Shapes: logits (B, T, V), input_ids (B, T), space_token_mask (V,) -> 3 x (B, T).
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083, Sec. 3.
    """
    check_ndim("logits", logits, 3)
    check_shape("input_ids", input_ids, logits.shape[:2])
    check_no_nan("logits", logits)
    vocab_size = logits.shape[-1]
    check_index_range("input_ids", input_ids, 0, vocab_size)
    _check_vocab_args(vocab_size, space_token_mask, eos_token_id)
    scores = logits.to(compute_dtype(logits))  # (B, T, V)
    if logit_softcap is not None:
        scores = logit_softcap * torch.tanh(scores / logit_softcap)
    lse = torch.logsumexp(scores, dim=-1)  # (B, T)
    next_ids = torch.cat([input_ids[:, 1:], input_ids[:, :1]], dim=1)  # (B, T), last is dummy
    picked = scores.gather(-1, next_ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    logprobs = _shift_in(picked - lse)
    space = None
    if space_token_mask is not None:
        masked = scores.masked_fill(~space_token_mask.to(scores.device), float("-inf"))
        space = torch.logsumexp(masked, dim=-1) - lse  # (B, T)
    eos = None if eos_token_id is None else scores[..., eos_token_id] - lse  # (B, T)
    return TokenLogprobs(logprobs, space, eos)


def token_logprobs(logits: Tensor, input_ids: Tensor) -> Tensor:
    """Log-probability of each observed token given its prefix; position 0 is 0.

    Shapes: logits (B, T, V), input_ids (B, T) -> (B, T).
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083, Sec. 3 ("main path").
    """
    return token_logprobs_from_logits(logits, input_ids).logprobs


def _check_chunk_args(chunk_size: int | None, max_kept_logits: int | None) -> None:
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if max_kept_logits is not None and max_kept_logits < 0:
        raise ValueError(f"max_kept_logits must be >= 0, got {max_kept_logits}")


def token_logprobs_from_hidden(
    hidden: Tensor,
    lm_head_weight: Tensor,
    input_ids: Tensor,
    *,
    lm_head_bias: Tensor | None = None,
    logit_softcap: float | None = None,
    space_token_mask: Tensor | None = None,
    eos_token_id: int | None = None,
    chunk_size: int | None = None,
    max_kept_logits: int | None = None,
) -> TokenLogprobs:
    """Memory-bounded main-path log-probs from final hidden states: no large (B, T, V) logits.

    Logits are computed ``chunk_size`` positions at a time in the forward pass and recomputed
    in the backward pass (a custom autograd function); only (B, T) statistics are kept. The
    default ``chunk_size`` keeps each chunk's logits near 16 MiB in float32. When all B*T*V
    logits fit in ``max_kept_logits`` values (None: 64 Mi, 256 MiB in float32; 0: never), they
    are kept from forward instead, and backward skips their recompute (a quarter of the head's
    matmuls; about 19% of a CPU transfer step with a 151k vocabulary).
    ``hidden`` is the state after the final norm and ``lm_head_weight`` is
    ``model.get_output_embeddings().weight``.

    Shapes: hidden (B, T, d), lm_head_weight (V, d), input_ids (B, T), lm_head_bias (V,),
    space_token_mask (V,) -> 3 x (B, T).
    Reference: Minixhofer, Vulić, Ponti 2025, arXiv 2503.20083, Sec. 3.
    """
    check_ndim("hidden", hidden, 3)
    check_ndim("lm_head_weight", lm_head_weight, 2)
    check_same_batch("hidden", hidden, "input_ids", input_ids)
    check_shape("input_ids", input_ids, hidden.shape[:2])
    check_shape("lm_head_weight", lm_head_weight, (None, hidden.shape[-1]))
    vocab_size = lm_head_weight.shape[0]
    if lm_head_bias is not None:
        check_shape("lm_head_bias", lm_head_bias, (vocab_size,))
    check_no_nan("hidden", hidden)
    check_index_range("input_ids", input_ids, 0, vocab_size)
    _check_vocab_args(vocab_size, space_token_mask, eos_token_id)
    _check_chunk_args(chunk_size, max_kept_logits)
    batch, length, width = hidden.shape
    next_ids = torch.cat([input_ids[:, 1:], input_ids[:, :1]], dim=1)  # (B, T)
    outputs = chunked_head_logprobs(
        hidden.reshape(batch * length, width),  # (B*T, d)
        lm_head_weight,
        lm_head_bias,
        next_ids.reshape(-1),  # (B*T,)
        space_token_mask=space_token_mask,
        eos_token_id=eos_token_id,
        logit_softcap=logit_softcap,
        chunk_size=chunk_size,
        max_kept_logits=max_kept_logits,
    )
    picked, space, eos = (o.reshape(batch, length) for o in outputs)  # 3 x (B, T)
    return TokenLogprobs(
        _shift_in(picked),
        space if space_token_mask is not None else None,
        eos if eos_token_id is not None else None,
    )
