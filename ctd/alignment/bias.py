"""Tokenization-bias statistics of a tokenizer pair, for mode="unbiased".

For a token t of tokenizer X, `bias[t]` estimates P(X would not end a token where t ends |
the text so far ends with t's bytes at a token start): the share of corpus occurrences of t's
bytes at a token start that X merges with what follows, counted as occurrences of longer tokens
whose bytes start with t's bytes, over those plus the occurrences of t itself. It is a per-token
upper bound of tokenkit's pair bias (the mass of continuations only one side merges across),
so thresholding it on both sides is conservative: it merges at least the chunks tokenkit merges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ctd.alignment.token_bytes import TokenBytes

__all__ = ["TokenizationBias", "token_bias"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TokenizationBias:
    """Per-token bias of a teacher and a student tokenizer, and the threshold to use.

    Shapes: teacher_bias (V_T,), student_bias (V_S,).
    """

    teacher_bias: FloatArray
    student_bias: FloatArray
    threshold: float = 0.1

    def is_unbiased(
        self, teacher_ids: npt.NDArray[np.int64], student_ids: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        """Whether a chunk boundary after this pair of last tokens is kept.

        Shapes: (C,), (C,) -> (C,). Ids outside the tables count as unbiased.
        """
        teacher = np.zeros(len(teacher_ids))
        student = np.zeros(len(student_ids))
        t_ok = teacher_ids < len(self.teacher_bias)
        s_ok = student_ids < len(self.student_bias)
        teacher[t_ok] = self.teacher_bias[teacher_ids[t_ok]]
        student[s_ok] = self.student_bias[student_ids[s_ok]]
        return np.asarray((teacher <= self.threshold) & (student <= self.threshold))

    def save(self, path: str | Path) -> None:
        """Write an .npz file."""
        np.savez_compressed(
            path,
            teacher_bias=self.teacher_bias,
            student_bias=self.student_bias,
            threshold=np.float64(self.threshold),
        )

    @classmethod
    def load(cls, path: str | Path, *, threshold: float | None = None) -> TokenizationBias:
        """Read an .npz file written by `save` (optionally overriding the threshold)."""
        with np.load(path) as data:
            return cls(
                teacher_bias=np.asarray(data["teacher_bias"], dtype=np.float64),
                student_bias=np.asarray(data["student_bias"], dtype=np.float64),
                threshold=float(data["threshold"]) if threshold is None else threshold,
            )


def token_bias(table: TokenBytes, id_batches: Iterable[npt.NDArray[np.int64]]) -> FloatArray:
    """Per-token bias from token ids of a corpus (see the module docstring).

    Shapes: each id batch (M,) -> (V,).
    """
    counts = np.zeros(table.vocab_size, dtype=np.float64)
    for ids in id_batches:
        counts += np.bincount(ids, minlength=table.vocab_size)[: table.vocab_size]
    index_of = {piece: index for index, piece in enumerate(table.bytes_of) if piece}
    merged = np.zeros(table.vocab_size, dtype=np.float64)
    for index in np.flatnonzero(counts):
        piece = table.bytes_of[index]
        for cut in range(1, len(piece)):
            prefix = index_of.get(piece[:cut])
            if prefix is not None:
                merged[prefix] += counts[index]
    bias = merged / np.maximum(merged + counts, 1.0)
    bias[(merged + counts) == 0] = 1.0  # never seen: assume biased
    bias[table.is_special] = 0.0
    return bias
