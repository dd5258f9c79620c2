"""Byte-level ensembles of models that keep their own tokenizers.

Each member is a `ByteLM` (its next-byte distribution, marginalised over the tokenizations
that cover the bytes so far); the ensemble's next-byte distribution is their weighted mean of
probabilities (Phan et al. 2024, arXiv 2410.09303, section 5: `ByteEnsemble.prob_next_byte`).
It scores texts byte by byte (bits per byte) and generates byte by byte.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from ctd.decoding import sample, warp_probs
from ctd.ensemble.byte_lm import EOS_INDEX, ByteLM, ByteLMState, canonical_text
from ctd.ensemble.weights import normalized_weights

__all__ = ["ByteEnsemble", "ByteScores"]

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ByteScores:
    """Per-byte log-probs of one text under every member and the ensemble (natural log).

    Shapes: member_logprobs (M, N) and ensemble_logprobs (N,), N = the text's bytes (+1 for
        EOS when scored with it).
    """

    member_logprobs: Floats
    ensemble_logprobs: Floats


class ByteEnsemble:
    """A weighted mean of the members' next-byte distributions.

    Args:
        members: the members' byte LMs.
        weights: mixture weights (normalised; uniform when None).

    Raises:
        ValueError: no member or bad weights.
    """

    def __init__(self, members: Sequence[ByteLM], weights: Sequence[float] | None = None) -> None:
        self.weights = normalized_weights(weights, len(members)).numpy()
        self.members = list(members)

    def initial(self, keep_canonical_of: str | None = None) -> list[ByteLMState]:
        """Every member's state before any byte (keeping `keep_canonical_of`'s canonical path)."""
        return [member.initial(keep_canonical_of) for member in self.members]

    def member_logprobs(self, states: Sequence[ByteLMState]) -> Floats:
        """Every member's next-byte log-probs. Shapes: returns (M, 257)."""
        return np.stack(
            [m.next_byte_logprobs(s) for m, s in zip(self.members, states, strict=True)]
        )

    def pool(self, member_logprobs: Floats) -> Floats:
        """Log sum_i w_i P_i(b | x). Shapes: (M, 257) -> (257,)."""
        with np.errstate(divide="ignore"):
            log_weights = np.log(self.weights)[:, None]
        pooled: Floats = np.logaddexp.reduce(member_logprobs + log_weights, axis=0)
        return pooled

    def advance(self, states: Sequence[ByteLMState], byte: int) -> list[ByteLMState]:
        """Every member's state after one more byte (consumes `states`)."""
        return [m.advance(s, byte) for m, s in zip(self.members, states, strict=True)]

    def advance_lanes(
        self, lanes: Sequence[Sequence[ByteLMState]], next_bytes: Sequence[int]
    ) -> list[list[ByteLMState]]:
        """Every lane's member states after its own next byte (`ByteLM.advance_lanes`).

        Shapes: lanes is L x M states (one list per lane, members in order), one byte per lane.
        """
        if len(lanes) != len(next_bytes):
            raise ValueError(f"one byte per lane, got {len(lanes)} and {len(next_bytes)}")
        moved = [
            member.advance_lanes([lane[index] for lane in lanes], next_bytes)
            for index, member in enumerate(self.members)
        ]  # M x L
        return [[member[lane] for member in moved] for lane in range(len(lanes))]

    def score(
        self, data: bytes, *, include_eos: bool = False, keep_canonical: bool = True
    ) -> ByteScores:
        """Per-byte log-probs of `data` under each member and the ensemble, on the same bytes.

        keep_canonical: every member's beam keeps its canonical tokenization of `data`
        (`ByteLM.score`), so no member scores below its canonical tokenization.
        """
        states = self.initial(canonical_text(data) if keep_canonical else None)
        rows = []
        for byte in data:
            member = self.member_logprobs(states)
            rows.append(member)
            states = self.advance(states, byte)
        if include_eos:
            rows.append(self.member_logprobs(states))
        targets = [*data, EOS_INDEX] if include_eos else list(data)
        if not rows:
            empty = np.zeros((len(self.members), 0))
            return ByteScores(empty, np.zeros(0))
        stacked = np.stack(rows)  # (N, M, 257)
        index = np.asarray(targets)
        member_lp = stacked[np.arange(len(index)), :, index].T  # (M, N)
        pooled = np.stack(
            [self.pool(row)[target] for row, target in zip(rows, targets, strict=True)]
        )
        return ByteScores(member_lp, pooled)

    def generate(
        self,
        prompt: bytes,
        max_new_bytes: int,
        *,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop_at_eos: bool = True,
        generator: torch.Generator | None = None,
    ) -> bytes:
        """Decode byte by byte from the pooled distribution (greedy at temperature 0).

        The prompt is read byte by byte (no tokenization), so any byte string can be continued.
        Returns the new bytes (without EOS); decode with `errors="replace"` to print a cut
        UTF-8 character.
        """
        if max_new_bytes < 0:
            raise ValueError(f"max_new_bytes must be >= 0, got {max_new_bytes}")
        states = self.initial()
        for byte in prompt:
            states = self.advance(states, byte)
        new = bytearray()
        for _ in range(max_new_bytes):
            pooled = torch.from_numpy(self.pool(self.member_logprobs(states)))
            if not stop_at_eos:
                pooled[EOS_INDEX] = -math.inf
            probs = warp_probs(pooled, temperature=temperature, top_p=top_p)
            choice = int(sample(probs, generator)) if temperature > 0 else int(probs.argmax())
            if choice == EOS_INDEX:
                break
            new.append(choice)
            states = self.advance(states, choice)
        return bytes(new)
