"""Byte-level scoring of many (context, continuation) pairs, their continuations stepped together.

A pair's score is its continuation's per-byte log-probs, log P(c_j | context, c_<j), under
every member's byte LM and under the ensemble (`ByteEnsemble.pool`). Consecutive pairs with
one context (a question's choices) share it: each member handles the context once and forks the
state per continuation (`ByteLM.fork`). The continuations of up to `max_lanes` pairs are stepped
byte by byte together, one forward per member per byte for all of them
(`ByteLM.advance_lanes`); each is scored as if alone. Two ways to condition on a context:

* `tokens`: each member conditions on its own canonical tokenization of the context (after its
  BOS), one forward; tokenizations of the context other than the canonical one, and tokens that
  straddle its end, are left out (an approximation, cheap: the context's bytes are not stepped
  through). Contexts of different pairs share one token tree (`ByteLM.initial_after_batch`).
* `bytes`: the context's bytes go through the members' byte beams too (the byte-level
  conditional P(continuation | context bytes), up to the beam), one forward per byte of the
  context per member; such a pair is stepped with the pairs of its own context only.

Trailing whitespace of a context is scored with the continuation (lm-eval's rule,
`move_trailing_spaces`). The beam keeps the path of the continuation's canonical tokens (of the
continuation alone in `tokens` mode, of the whole text in `bytes` mode), as `ByteLM.score` keeps
a scored text's. Used by `ctd.ensemble.downstream` (multiple choice) and
`ctd.ensemble.scoring` (bits per byte of long texts, in windows).
Reference: Phan et al. 2024, arXiv 2410.09303 (byte-level ensembles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ctd.ensemble.byte_ensemble import ByteEnsemble
from ctd.ensemble.byte_lm import ByteLM, ByteLMState
from ctd.evaluation.requests import move_trailing_spaces

__all__ = ["CONTEXT_MODES", "PairScores", "score_pairs"]

CONTEXT_MODES = ("tokens", "bytes")
"""How a byte-level ensemble conditions on a pair's context (see the module docstring)."""

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PairScores:
    """One continuation's per-byte log-probs (natural log) and whether each byte was the argmax.

    Shapes: member_logprobs (M, N), member_greedy (M, N), ensemble_logprobs (N,),
        ensemble_greedy (N,); N = the continuation's UTF-8 bytes (after
        `move_trailing_spaces`).
    """

    member_logprobs: Floats
    member_greedy: Bools
    ensemble_logprobs: Floats
    ensemble_greedy: Bools


@dataclass(frozen=True)
class _Group:
    """Consecutive pairs with one context (a question's choices): their pair indices."""

    context: str
    continuations: list[str]
    indices: list[int]


def _groups(pairs: Sequence[tuple[str, str]]) -> list[_Group]:
    """Consecutive pairs with the same context (after `move_trailing_spaces`), in order.

    Raises:
        ValueError: an empty continuation.
    """
    groups: list[_Group] = []
    for index, pair in enumerate(pairs):
        context, continuation = move_trailing_spaces(*pair)
        if not continuation:
            raise ValueError(f"an empty continuation after {context[-40:]!r}")
        if groups and groups[-1].context == context:
            groups[-1].continuations.append(continuation)
            groups[-1].indices.append(index)
        else:
            groups.append(_Group(context, [continuation], [index]))
    return groups


def _batches(groups: list[_Group], mode: str, max_lanes: int) -> list[list[_Group]]:
    """Groups stepped together: up to `max_lanes` pairs on one token tree per member.

    Only `tokens` contexts (the empty one included) share a tree across groups
    (`ByteLM.initial_after_batch`); a `bytes` context is stepped with its own group only.
    """
    batches: list[list[_Group]] = []
    lanes = 0
    for group in groups:
        shares = mode == "tokens"
        if batches and shares and lanes + len(group.indices) <= max_lanes:
            batches[-1].append(group)
            lanes += len(group.indices)
        else:
            batches.append([group])
            lanes = len(group.indices) if shares else max_lanes  # a full batch: none joins it
    return batches


def _token_ids(member: ByteLM, text: str) -> list[int]:
    return [int(i) for i in member.tokenizer(text, add_special_tokens=False)["input_ids"]]


def _context_state(member: ByteLM, context: str) -> ByteLMState:
    """A member's state after a context's bytes, stepped through its beam."""
    state = member.initial(context)
    for byte in context.encode("utf-8"):
        state = member.advance(state, byte)
    return state


def _continuation_plan(
    member: ByteLM, context: str, continuation: str, mode: str
) -> dict[int, int] | None:
    """The path of the continuation's tokens for the beam to keep (text bytes -> id).

    `bytes`: the whole text's canonical tokens (byte positions of the whole text, as the
    context's state counts them). `tokens`: the continuation's own canonical tokens, when they
    spell its bytes (not with a dummy-prefix space: then no path is kept).
    """
    if mode == "bytes":
        return member.canonical_ends(context + continuation)
    ids = _token_ids(member, continuation)
    if b"".join(member.trie.bytes_of[i] for i in ids) != continuation.encode("utf-8"):
        return None
    try:
        return member.token_plan(ids)
    except ValueError:
        return None  # a continuation token that spells no bytes: no path to keep


def _roots(member: ByteLM, batch: list[_Group], mode: str) -> list[ByteLMState | None]:
    """A member's state after each group's context, the `tokens` ones on one tree.

    None: an empty context that the member starts per continuation with `ByteLM.initial`
    (in `bytes` mode, or before a tokenizer's dummy-prefix space).
    """
    if mode == "bytes":
        return [_context_state(member, group.context) if group.context else None for group in batch]
    shared = [bool(group.context) or not member.trie.prepends_space for group in batch]
    contexts = [_token_ids(member, g.context) for g, s in zip(batch, shared, strict=True) if s]
    roots = iter(member.initial_after_batch(contexts))
    return [next(roots) if on_tree else None for on_tree in shared]


def _lane_states(member: ByteLM, batch: list[_Group], mode: str) -> list[ByteLMState]:
    """A member's state for every pair of a batch, in order; a group's share its tree."""
    states = []
    for root, group in zip(_roots(member, batch, mode), batch, strict=True):
        for continuation in group.continuations:
            if root is None:  # from the initial state, keeping the text's canonical path
                states.append(member.initial(continuation))
                continue
            state = member.fork(root, share_tree=True)
            state.canonical_ends = _continuation_plan(member, group.context, continuation, mode)
            states.append(state)
    return states


def _score_lanes(
    ensemble: ByteEnsemble, lanes: list[list[ByteLMState]], data: list[bytes]
) -> list[PairScores]:
    """Each lane's member and ensemble log P(data | state), all lanes a byte at a time.

    Shapes: lanes is M x L states, data L byte strings; consumes the states.
    """
    num_members = len(ensemble.members)
    member_lp = [np.zeros((num_members, len(item))) for item in data]
    member_greedy = [np.zeros((num_members, len(item)), dtype=bool) for item in data]
    pooled_lp = [np.zeros(len(item)) for item in data]
    pooled_greedy = [np.zeros(len(item), dtype=bool) for item in data]
    live = list(range(len(data)))
    states = {lane: [member[lane] for member in lanes] for lane in live}
    position = 0
    while live:
        for lane in live:
            byte = data[lane][position]
            logprobs = ensemble.member_logprobs(states[lane])  # (M, 257)
            pooled = ensemble.pool(logprobs)  # (257,)
            member_lp[lane][:, position] = logprobs[:, byte]
            member_greedy[lane][:, position] = logprobs.argmax(axis=1) == byte
            pooled_lp[lane][position] = pooled[byte]
            pooled_greedy[lane][position] = int(pooled.argmax()) == byte
        live = [lane for lane in live if position + 1 < len(data[lane])]
        moved = ensemble.advance_lanes(
            [states[lane] for lane in live], [data[lane][position] for lane in live]
        )
        states = dict(zip(live, moved, strict=True))
        position += 1
    return [
        PairScores(member_lp[lane], member_greedy[lane], pooled_lp[lane], pooled_greedy[lane])
        for lane in range(len(data))
    ]


def score_pairs(
    ensemble: ByteEnsemble,
    pairs: Sequence[tuple[str, str]],
    *,
    context: str = "tokens",
    max_lanes: int = 32,
    progress: bool | None = False,
) -> list[PairScores]:
    """Every member's and the ensemble's per-byte log-probs of each pair's continuation.

    Args:
        ensemble: the members' byte LMs and the weights.
        pairs: (context, continuation) texts.
        context: `tokens` or `bytes` (see the module docstring).
        max_lanes: most continuations stepped together (memory grows with it: every lane's
            beam keeps a next-token distribution per hypothesis).
        progress: show a progress bar (None: only on a terminal).

    Raises:
        ValueError: an unknown context mode, an empty continuation, max_lanes < 1, or a byte
            of probability 0 under a member.
    """
    from tqdm.auto import tqdm

    if context not in CONTEXT_MODES:
        raise ValueError(f"context must be one of {', '.join(CONTEXT_MODES)}, got {context!r}")
    if max_lanes < 1:
        raise ValueError(f"max_lanes must be at least 1, got {max_lanes}")
    scores: dict[int, PairScores] = {}
    bar = tqdm(total=len(pairs), desc="scoring", disable=None if progress is None else not progress)
    for batch in _batches(_groups(pairs), context, max_lanes):
        lanes = [
            _lane_states(member, batch, context) for member in ensemble.members
        ]  # M x (lanes,)
        data = [text.encode("utf-8") for group in batch for text in group.continuations]
        indices = [index for group in batch for index in group.indices]
        scores.update(zip(indices, _score_lanes(ensemble, lanes, data), strict=True))
        bar.update(len(indices))
    bar.close()
    return [scores[index] for index in range(len(pairs))]
