"""Tokenization-bias statistics of a tokenizer pair, for mode="unbiased".

For a token t of tokenizer X, `bias[t] = M / (M + N)`: N is the number of corpus occurrences
of t, M the number of occurrences of longer tokens whose bytes start with t's bytes (ids with
equal bytes, such as "a" and its byte-fallback "<0x61>", share M). It estimates
how often X, having started a token with t's bytes, runs on past t's end. Tokens never seen
this way get 1.0 (biased), special tokens 0.0.

Relation to tokenkit's pair bias (`scripts/compute_tokenizer_info.py`, arXiv 2503.20083): there,
bias1[t_T, t_S] is the unigram probability mass of the teacher's cover tokens whose overhang
(the text the cover runs past t_T's end) the student cannot produce. `bias[t]` bounds from
above only the part of that sum whose cover token starts with t's whole bytes (tokenkit's covers
with i = 0, without additive smoothing): those tokens are among the ones counted in M, and
M + N is at most the corpus' token count. It does not count covers that start inside t (X
segmenting t's bytes differently, e.g. "a" + "bc" for a token "ab" before "c"), so it is NOT an
upper bound of tokenkit's pair bias, and thresholding it may keep a boundary that tokenkit's
`alm_unbiased` would merge (tests/alignment/test_bias.py has a worked case). Its values are
conditional shares, not unigram masses, so the two thresholds are not interchangeable either.
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
    ids_of: dict[bytes, list[int]] = {}  # several ids may stand for one piece ("a", "<0x61>")
    for token_id, piece in enumerate(table.bytes_of):
        if piece:
            ids_of.setdefault(piece, []).append(token_id)
    first_id = {piece: same[0] for piece, same in ids_of.items()}
    merged = np.zeros(table.vocab_size, dtype=np.float64)
    for index in np.flatnonzero(counts):
        piece = table.bytes_of[index]
        for cut in range(1, len(piece)):
            prefix = first_id.get(piece[:cut])
            if prefix is not None:
                merged[prefix] += counts[index]
    for same_bytes in ids_of.values():
        if len(same_bytes) > 1:
            merged[same_bytes[1:]] = merged[same_bytes[0]]
    bias = merged / np.maximum(merged + counts, 1.0)
    bias[(merged + counts) == 0] = 1.0  # never seen: assume biased
    bias[table.is_special] = 0.0
    return bias
