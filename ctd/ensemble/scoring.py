"""Scoring texts with an ensemble: per-unit log-probs, then bits per byte on the same bytes.

A *unit* is a token (lockstep) or a byte (byte level). Every member and the ensemble score
exactly the UTF-8 bytes of each text, conditioned on the tokenizer's BOS (see `context_ids`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ctd.alignment.encode import encode
from ctd.ensemble.byte_ensemble import ByteEnsemble
from ctd.ensemble.byte_lm import context_ids
from ctd.ensemble.lockstep import LockstepEnsemble
from ctd.metrics import bits_per_byte_sums

__all__ = [
    "BitsPerByteReport",
    "TextScores",
    "bits_per_byte_report",
    "score_bytes",
    "score_lockstep",
]


@dataclass(frozen=True)
class TextScores:
    """Log-probs (natural log) of the units of one text under every member and the ensemble.

    Shapes: member_logprobs (M, N) float64, ensemble_logprobs (N,) float64.
    """

    member_logprobs: Tensor
    ensemble_logprobs: Tensor
    num_bytes: int


@dataclass(frozen=True)
class BitsPerByteReport:
    """Bits per byte of every member and of the ensemble over the same bytes."""

    member_bpb: list[float]
    ensemble_bpb: float
    num_bytes: int


def score_lockstep(
    ensemble: LockstepEnsemble, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 8
) -> list[TextScores]:
    """Teacher-forced token log-probs of each text (after the tokenizer's BOS), batched.

    Memory: one (batch, tokens, V) logits tensor per member at a time.
    """
    context = context_ids(tokenizer)
    scores: list[TextScores] = []
    for start in range(0, len(texts), batch_size):
        encoded = encode(
            tokenizer, list(texts[start : start + batch_size]), add_special_tokens=False
        )
        rows = [context + [int(i) for i in item.input_ids] for item in encoded]
        width = max(len(row) for row in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = torch.tensor(row)
            mask[index, : len(row)] = 1
        member_lp, pooled = ensemble.score(ids.to(ensemble.device), mask.to(ensemble.device))
        for index, (row, item) in enumerate(zip(rows, encoded, strict=True)):
            units = slice(len(context), len(row))
            scores.append(
                TextScores(
                    member_lp[:, index, units].double().cpu(),
                    pooled[index, units].double().cpu(),
                    item.num_text_bytes,
                )
            )
    return scores


def score_bytes(ensemble: ByteEnsemble, texts: Sequence[str]) -> list[TextScores]:
    """Per-byte log-probs of each text under every member's byte LM and the ensemble."""
    scores = []
    for text in texts:
        data = text.encode("utf-8")
        result = ensemble.score(data)
        scores.append(
            TextScores(
                torch.from_numpy(np.ascontiguousarray(result.member_logprobs)),
                torch.from_numpy(result.ensemble_logprobs),
                len(data),
            )
        )
    return scores


def _nll_bits(unit_logprobs: Tensor, num_bytes: int) -> tuple[float, int]:
    """Negative log2-likelihood of one text's units through `bits_per_byte_sums` (one chunk)."""
    logprobs = torch.nn.functional.pad(unit_logprobs, (1, 0))[None]  # position 0: context
    chunk_index = torch.zeros_like(logprobs, dtype=torch.long)
    chunk_index[0, 0] = -1
    nll_bits, counted = bits_per_byte_sums(logprobs, chunk_index, torch.tensor([[num_bytes]]))
    return float(nll_bits), int(counted)


def bits_per_byte_report(scores: Sequence[TextScores]) -> BitsPerByteReport:
    """Bits per byte of every member and of the ensemble over all the texts' bytes.

    Raises:
        ValueError: no text has a byte to score.
    """
    scored = [item for item in scores if item.num_bytes > 0 and item.ensemble_logprobs.numel() > 0]
    if not scored:
        raise ValueError("no text with bytes to score")
    num_members = scored[0].member_logprobs.shape[0]
    member_bits = [0.0] * num_members
    ensemble_bits, num_bytes = 0.0, 0
    for item in scored:
        bits, counted = _nll_bits(item.ensemble_logprobs, item.num_bytes)
        ensemble_bits += bits
        num_bytes += counted
        for member in range(num_members):
            member_bits[member] += _nll_bits(item.member_logprobs[member], item.num_bytes)[0]
    return BitsPerByteReport(
        [bits / num_bytes for bits in member_bits], ensemble_bits / num_bytes, num_bytes
    )
