"""Scoring texts with an ensemble: per-unit log-probs, then bits per byte on the same bytes.

A *unit* is a token (lockstep) or a byte (byte level). Every member and the ensemble score
exactly the UTF-8 bytes of each text, conditioned on the tokenizer's BOS (see `context_ids`).

Byte level, a long text can be scored in windows (`score_bytes(window_bytes=...)`): window k's
bytes are scored under each member's byte LM after that member's canonical tokens of all the
text before the window (`ctd.ensemble.lanes`, `tokens` contexts), and all windows are stepped
together as lanes, one forward per member per byte for up to `max_lanes` windows. Windows are
cut before a whitespace character that follows a non-whitespace one where they can be (so, for
tokenizers whose tokens carry their leading space, the context's canonical tokens are those of
the whole text), else after a punctuation mark, else where the window is full; a context never
ends in whitespace. Against one beam over the whole text this leaves out the context's
non-canonical tokenizations and tokens across a cut (results/ensemble.md measures the gap).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ctd.alignment.encode import encode
from ctd.ensemble.byte_ensemble import ByteEnsemble
from ctd.ensemble.byte_lm import context_ids
from ctd.ensemble.lanes import score_pairs
from ctd.ensemble.lockstep import LockstepEnsemble
from ctd.metrics import bits_per_byte_sums

__all__ = [
    "BitsPerByteReport",
    "TextScores",
    "bits_per_byte_report",
    "score_bytes",
    "context_cut",
    "score_lockstep",
    "window_starts",
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


def score_bytes(
    ensemble: ByteEnsemble,
    texts: Sequence[str],
    *,
    window_bytes: int | None = None,
    warmup_bytes: int = 16,
    max_lanes: int = 32,
    progress: bool | None = False,
) -> list[TextScores]:
    """Per-byte log-probs of each text under every member's byte LM and the ensemble.

    Args:
        ensemble: the members' byte LMs and the weights.
        texts: the texts, each scored from its first byte.
        window_bytes: None: one beam per text, byte by byte (`ByteEnsemble.score`). Else the
            texts are cut into windows of at most this many bytes (`window_starts`), each
            conditioned on the tokens of the text before it, stepped together (module
            docstring).
        warmup_bytes: windows: up to this many bytes before a window that does not start at a
            clean token boundary go through the beams unscored (`context_cut`).
        max_lanes: windows stepped together (memory grows with it).
        progress: show a progress bar over the windows (None: only on a terminal).

    Raises:
        ValueError: window_bytes < 4, warmup_bytes < 0 or max_lanes < 1, or a byte of
            probability 0.
    """
    if window_bytes is not None:
        return _score_windows(ensemble, texts, window_bytes, warmup_bytes, max_lanes, progress)
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


def _score_windows(
    ensemble: ByteEnsemble,
    texts: Sequence[str],
    window_bytes: int,
    warmup_bytes: int,
    max_lanes: int,
    progress: bool | None,
) -> list[TextScores]:
    """`score_bytes` in windows: one (text before, warm-up + window) pair per window, as lanes."""
    pairs: list[tuple[str, str]] = []
    warmups: list[int] = []  # bytes of each pair's continuation before its window
    windows_per_text = []
    for text in texts:
        starts = [*window_starts(text, window_bytes), len(text)]
        for start, end in zip(starts, starts[1:], strict=False):
            context_end = context_cut(text, start, warmup_bytes)
            pairs.append((text[:context_end], text[context_end:end]))
            warmups.append(len(text[context_end:start].encode("utf-8")))
        windows_per_text.append(len(starts) - 1)
    scored = iter(score_pairs(ensemble, pairs, max_lanes=max_lanes, progress=progress))
    skips = iter(warmups)
    scores = []
    for text, count in zip(texts, windows_per_text, strict=True):
        windows = [(next(scored), next(skips)) for _ in range(count)]
        member_lp = np.concatenate(
            [np.zeros((len(ensemble.members), 0)), *(w.member_logprobs[:, k:] for w, k in windows)],
            axis=1,
        )
        num_bytes = len(text.encode("utf-8"))
        if member_lp.shape[1] != num_bytes:  # window_starts' promise: no byte moved or lost
            raise AssertionError(f"windows of {member_lp.shape[1]} bytes tile {num_bytes}")
        pooled = np.concatenate([np.zeros(0), *(w.ensemble_logprobs[k:] for w, k in windows)])
        scores.append(TextScores(torch.from_numpy(member_lp), torch.from_numpy(pooled), num_bytes))
    return scores


def context_cut(text: str, window_start: int, warmup_bytes: int) -> int:
    """Where a window's token context ends (a character offset <= window_start).

    The latest place at most `warmup_bytes` before the window that is a clean token boundary
    (the text's start, before a whitespace character that follows a non-whitespace one, or
    after a punctuation mark), else the first character at most `warmup_bytes` before it. The
    bytes from there to the window go through the members' beams unscored (a warm-up), so a
    window cut inside a word is conditioned on every tokenization of that word's start.

    Example:
        >>> context_cut("the cat sat", 7, 8), context_cut("the catsat", 7, 8)
        (7, 3)
    """
    if warmup_bytes < 0:
        raise ValueError(f"warmup_bytes must be >= 0, got {warmup_bytes}")
    budget = warmup_bytes
    earliest = window_start
    while earliest > 0 and len(text[earliest - 1].encode("utf-8")) <= budget:
        budget -= len(text[earliest - 1].encode("utf-8"))
        earliest -= 1
    for cut in range(window_start, earliest - 1, -1):
        if cut == 0 or (not text[cut - 1].isspace() and _clean_after(text, cut)):
            return cut
    return earliest


def _clean_after(text: str, cut: int) -> bool:
    """A clean token boundary at `cut` (0 < cut): whitespace follows, or a mark precedes."""
    at_space = cut < len(text) and text[cut].isspace()
    return at_space or unicodedata.category(text[cut - 1]).startswith("P")


def window_starts(text: str, window_bytes: int) -> list[int]:
    """Where the windows of `text` start (character offsets, 0 first; none for "").

    A window holds at most `window_bytes` UTF-8 bytes and ends where the next may start: before
    a whitespace character that follows a non-whitespace one, else after a punctuation mark
    (either only once the window is at least half full), else at any character that does not
    follow whitespace (so no window's context ends in whitespace), the latest such place that
    fits. Only a run of whitespace longer than the window makes a window longer.

    Example:
        >>> window_starts("the cat sat on the mat", 8)
        [0, 7, 14]

    Raises:
        ValueError: window_bytes < 4 (a UTF-8 character has up to 4).
    """
    if window_bytes < 4:
        raise ValueError(f"window_bytes must be at least 4 (a UTF-8 character), got {window_bytes}")
    byte_ends = np.cumsum([len(char.encode("utf-8")) for char in text])  # after char i
    starts: list[int] = []
    start = 0
    while start < len(text):
        starts.append(start)
        budget = (byte_ends[start - 1] if start else 0) + window_bytes
        last = int(np.searchsorted(byte_ends, budget, side="right"))  # chars [start, last) fit
        start = len(text) if last >= len(text) else _cut(text, start, last, byte_ends, window_bytes)
    return starts


def _cut(text: str, start: int, last: int, byte_ends: Any, window_bytes: int) -> int:
    """The next window's start in (start, last], by `window_starts`' preference.

    A whitespace or punctuation cut must leave the window at least half full.
    """
    legal = [c for c in range(last, start, -1) if not text[c - 1].isspace()]
    first_byte = byte_ends[start - 1] if start else 0
    half_full = [c for c in legal if 2 * (byte_ends[c - 1] - first_byte) >= window_bytes]
    space_cuts = (c for c in half_full if text[c].isspace())
    mark_cuts = (c for c in half_full if unicodedata.category(text[c - 1]).startswith("P"))
    for cuts in (space_cuts, mark_cuts):
        found = next(cuts, None)
        if found is not None:
            return found
    if legal:
        return legal[0]
    after = next((c for c in range(last + 1, len(text)) if not text[c - 1].isspace()), None)
    return len(text) if after is None else after  # a run of whitespace longer than the window


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
