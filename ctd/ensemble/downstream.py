"""Multiple-choice accuracy of ensembles: every member and the ensemble on the same requests.

The questions, the (context, continuation) requests and the aggregation (`acc`, `acc_per_byte`)
are those of `ctd evaluate` (`ctd.evaluation.downstream`); only a request's score changes.

* Lockstep (members share a tokenizer): a request is tokenized as `ctd evaluate` tokenizes it
  (`encode_pair`, the lm-eval-harness rule) and its score is sum_t log p_ens(x_t | x_<t) over
  the continuation's tokens, p_ens the members' pooled distribution (`LockstepEnsemble.pool`:
  the weighted mean of probabilities, or of log-probabilities renormalised). One forward per
  member per batch; the head runs only on the continuation's positions.
* Byte level (members keep their tokenizers, `ByteEnsemble`): the score is
  sum_j log P_ens(c_j | context, c_<j) over the continuation's UTF-8 bytes, P_ens the weighted
  mean of the members' next-byte distributions (each `ByteLM` marginalises over the
  tokenizations of the continuation's bytes so far). The context is handled once per question
  and its state forked for each choice (`ByteLM.fork`), in one of two ways:
  `context="tokens"` (default): each member conditions on its own canonical tokenization of the
  context (after its BOS), one forward; tokenizations of the context other than the canonical
  one, and tokens that straddle its end, are left out (an approximation, cheap: the context's
  bytes are not stepped through). `context="bytes"`: the context's bytes go through the
  members' byte beams too (the byte-level conditional P(continuation | context bytes), up to
  the beam), one forward per byte of the context per member.

As in `ctd evaluate`, trailing spaces of a context are scored with the continuation. The beam
keeps the path of the continuation's canonical tokens (of the continuation alone in `tokens`
mode, of the whole text in `bytes` mode), as `ByteLM.score` keeps a scored text's.
Reference: Phan et al. 2024, arXiv 2410.09303 (byte-level ensembles); Gao et al.,
lm-evaluation-harness (requests and metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from ctd.ensemble.byte_ensemble import ByteEnsemble
from ctd.ensemble.byte_lm import ByteLM, ByteLMState
from ctd.ensemble.lockstep import LockstepEnsemble
from ctd.evaluation.downstream import (
    HEAD_ROWS_PER_CHUNK,
    RequestScore,
    TaskResult,
    TokenRequest,
    continuation_hidden,
    in_batches,
    model_input,
    model_max_length,
    move_trailing_spaces,
    output_logits,
    question_pairs,
    question_requests,
    request_scores,
    task_result,
)
from ctd.evaluation.tasks import Question

__all__ = [
    "CONTEXT_MODES",
    "EnsembleScores",
    "EnsembleTaskResult",
    "evaluate_bytes",
    "evaluate_lockstep",
    "score_requests_bytes",
    "score_requests_lockstep",
]

CONTEXT_MODES = ("tokens", "bytes")
"""How a byte-level ensemble conditions on a request's context (see the module docstring)."""


@dataclass(frozen=True)
class EnsembleScores:
    """Every request's score under each member (M lists of R) and under the ensemble (R)."""

    member_scores: list[list[RequestScore]]
    ensemble_scores: list[RequestScore]


@dataclass(frozen=True)
class EnsembleTaskResult:
    """`task_result` of each member and of the ensemble, on the same questions."""

    members: list[TaskResult]
    ensemble: TaskResult


def ensemble_task_result(
    questions: Sequence[Question], scores: EnsembleScores, kind: str
) -> EnsembleTaskResult:
    """Aggregate every member's and the ensemble's scores with `task_result`."""
    return EnsembleTaskResult(
        [task_result(questions, member, kind) for member in scores.member_scores],
        task_result(questions, scores.ensemble_scores, kind),
    )


def _transpose(rows: Sequence[tuple[list[RequestScore], RequestScore]]) -> EnsembleScores:
    """Per-request (member scores, ensemble score) -> `EnsembleScores`."""
    num_members = len(rows[0][0]) if rows else 0
    return EnsembleScores(
        [[members[i] for members, _ in rows] for i in range(num_members)],
        [pooled for _, pooled in rows],
    )


def _lockstep_batch(
    ensemble: LockstepEnsemble, inputs: list[list[int]], requests: list[TokenRequest]
) -> list[tuple[list[RequestScore], RequestScore]]:
    """One forward per member; pooled log-probs of the continuation tokens, a chunk at a time."""
    hidden = [continuation_hidden(member.model, inputs, requests) for member in ensemble.members]
    targets = hidden[0][1].to(ensemble.device)
    picked: list[list[torch.Tensor]] = [[] for _ in range(len(ensemble.members) + 1)]
    greedy: list[list[torch.Tensor]] = [[] for _ in range(len(ensemble.members) + 1)]
    for start in range(0, targets.shape[0], HEAD_ROWS_PER_CHUNK):
        rows = slice(start, start + HEAD_ROWS_PER_CHUNK)
        logits = [
            output_logits(member.model, member_hidden[rows]).to(ensemble.device)
            for member, (member_hidden, _) in zip(ensemble.members, hidden, strict=True)
        ]  # M x (n, V_i)
        logprobs = [F.log_softmax(row[:, : ensemble.vocab_size], dim=-1) for row in logits]
        for index, table in enumerate([*logprobs, ensemble.pool(logits)]):
            picked[index].append(table.gather(1, targets[rows, None])[:, 0])
            greedy[index].append(table.argmax(dim=-1) == targets[rows])
    scores = [
        request_scores(torch.cat(p), torch.cat(g), requests)
        for p, g in zip(picked, greedy, strict=True)
    ]
    return [(list(row[:-1]), row[-1]) for row in zip(*scores, strict=True)]


@torch.no_grad()
def score_requests_lockstep(
    ensemble: LockstepEnsemble,
    requests: Sequence[TokenRequest],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    progress: bool | None = False,
) -> EnsembleScores:
    """Every member's and the ensemble's score of each token request, batched, longest first.

    Args:
        ensemble: members that share a tokenizer.
        requests: the requests (`encode_pair` with that tokenizer).
        batch_size: requests per forward pass.
        max_length: the context (default: the shortest `model_max_length` of the members).
        progress: show a progress bar (None: only on a terminal).

    Raises:
        ValueError: a continuation longer than the context, or batch_size < 1.
    """
    limit = max_length
    if limit is None:
        limit = min(model_max_length(member.model) for member in ensemble.members)
    inputs = [model_input(request, limit) for request in requests]
    rows = in_batches(
        inputs,
        requests,
        lambda batch_inputs, batch_requests: _lockstep_batch(
            ensemble, batch_inputs, batch_requests
        ),
        batch_size=batch_size,
        progress=progress,
    )
    return _transpose(rows)


def evaluate_lockstep(
    ensemble: LockstepEnsemble,
    tokenizer: Any,
    questions: Sequence[Question],
    kind: str,
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    add_special_tokens: bool = False,
    progress: bool | None = False,
) -> EnsembleTaskResult:
    """Score every choice of every question with a lockstep ensemble and aggregate."""
    requests = question_requests(tokenizer, questions, add_special_tokens=add_special_tokens)
    scores = score_requests_lockstep(
        ensemble, requests, batch_size=batch_size, max_length=max_length, progress=progress
    )
    return ensemble_task_result(questions, scores, kind)


def _context_state(member: ByteLM, context: str, mode: str) -> ByteLMState:
    """A member's state after a non-empty context (`tokens`: after its canonical tokens)."""
    if mode == "tokens":
        return member.initial_after(_token_ids(member, context))
    state = member.initial(context)
    for byte in context.encode("utf-8"):
        state = member.advance(state, byte)
    return state


def _token_ids(member: ByteLM, text: str) -> list[int]:
    return [int(i) for i in member.tokenizer(text, add_special_tokens=False)["input_ids"]]


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


@dataclass(frozen=True)
class _Group:
    """Consecutive requests with one context (a question's choices): their pair indices."""

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
    """Groups stepped together: up to `max_lanes` requests on one token tree per member.

    Only `tokens` contexts share a tree across groups (`ByteLM.initial_after_batch`); a
    `bytes` context, or an empty one, is stepped with its own group only.
    """
    batches: list[list[_Group]] = []
    lanes = 0
    for group in groups:
        shares = mode == "tokens" and bool(group.context)
        if batches and shares and lanes + len(group.indices) <= max_lanes:
            batches[-1].append(group)
            lanes += len(group.indices)
        else:
            batches.append([group])
            lanes = len(group.indices) if shares else max_lanes  # a full batch: none joins it
    return batches


def _lane_states(member: ByteLM, batch: list[_Group], mode: str) -> list[ByteLMState]:
    """A member's state for every request of a batch, in order; a group's share its tree."""
    if not batch[0].context:  # an empty context: each from the initial state (`ByteLM.score`)
        return [member.initial(text) for group in batch for text in group.continuations]
    if mode == "tokens":
        roots = member.initial_after_batch([_token_ids(member, g.context) for g in batch])
    else:
        roots = [_context_state(member, group.context, mode) for group in batch]
    states = []
    for root, group in zip(roots, batch, strict=True):
        for continuation in group.continuations:
            state = member.fork(root, share_tree=True)
            state.canonical_ends = _continuation_plan(member, group.context, continuation, mode)
            states.append(state)
    return states


def score_requests_bytes(
    ensemble: ByteEnsemble,
    pairs: Sequence[tuple[str, str]],
    *,
    context: str = "tokens",
    max_lanes: int = 32,
    progress: bool | None = False,
) -> EnsembleScores:
    """Every member's and the ensemble's log P(continuation bytes | context) of each pair.

    Consecutive pairs with the same context (a question's choices) share its state: each member
    handles the context once and forks the state per choice. The continuations of up to
    `max_lanes` pairs (several questions' in `tokens` mode) are stepped byte by byte together,
    one forward per member per byte for all of them (`ByteLM.advance_lanes`); each is scored as
    if alone.

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
    rows: dict[int, tuple[list[RequestScore], RequestScore]] = {}
    bar = tqdm(total=len(pairs), desc="scoring", disable=None if progress is None else not progress)
    for batch in _batches(_groups(pairs), context, max_lanes):
        lanes = [
            _lane_states(member, batch, context) for member in ensemble.members
        ]  # M x (lanes,)
        data = [text.encode("utf-8") for group in batch for text in group.continuations]
        indices = [index for group in batch for index in group.indices]
        rows.update(zip(indices, _score_lanes(ensemble, lanes, data), strict=True))
        bar.update(len(indices))
    bar.close()
    return _transpose([rows[index] for index in range(len(pairs))])


def _score_lanes(
    ensemble: ByteEnsemble, lanes: list[list[ByteLMState]], data: list[bytes]
) -> list[tuple[list[RequestScore], RequestScore]]:
    """Each lane's member and ensemble log P(data | state), all lanes a byte at a time.

    Shapes: lanes is M x L states, data L byte strings; consumes the states.
    """
    num_members = len(ensemble.members)
    member_sums = np.zeros((len(data), num_members))
    member_greedy = np.ones((len(data), num_members), dtype=bool)
    pooled_sums, pooled_greedy = np.zeros(len(data)), np.ones(len(data), dtype=bool)
    live = list(range(len(data)))
    states = {lane: [member[lane] for member in lanes] for lane in live}
    position = 0
    while live:
        for lane in live:
            byte = data[lane][position]
            member_logprobs = ensemble.member_logprobs(states[lane])  # (M, 257)
            pooled = ensemble.pool(member_logprobs)
            member_sums[lane] += member_logprobs[:, byte]
            member_greedy[lane] &= member_logprobs.argmax(axis=1) == byte
            pooled_sums[lane] += float(pooled[byte])
            pooled_greedy[lane] &= int(pooled.argmax()) == byte
        live = [lane for lane in live if position + 1 < len(data[lane])]
        moved = ensemble.advance_lanes(
            [states[lane] for lane in live], [data[lane][position] for lane in live]
        )
        states = dict(zip(live, moved, strict=True))
        position += 1
    return [
        (
            [
                RequestScore(float(total), bool(greedy), len(data[lane]))
                for total, greedy in zip(member_sums[lane], member_greedy[lane], strict=True)
            ],
            RequestScore(float(pooled_sums[lane]), bool(pooled_greedy[lane]), len(data[lane])),
        )
        for lane in range(len(data))
    ]


def evaluate_bytes(
    ensemble: ByteEnsemble,
    questions: Sequence[Question],
    kind: str,
    *,
    context: str = "tokens",
    max_lanes: int = 32,
    progress: bool | None = False,
) -> EnsembleTaskResult:
    """Score every choice of every question with a byte-level ensemble and aggregate."""
    scores = score_requests_bytes(
        ensemble,
        question_pairs(questions),
        context=context,
        max_lanes=max_lanes,
        progress=progress,
    )
    return ensemble_task_result(questions, scores, kind)
