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
  tokenizations of the continuation's bytes so far). A question's context is handled once per
  member and its state forked for each choice; `context="tokens"` (default) conditions on each
  member's canonical tokens of the context, `context="bytes"` steps the context's bytes through
  the beams too; the choices of several questions are stepped together
  (`ctd.ensemble.lanes`, where both modes are defined).

As in `ctd evaluate`, trailing spaces of a context are scored with the continuation.
Reference: Phan et al. 2024, arXiv 2410.09303 (byte-level ensembles); Gao et al.,
lm-evaluation-harness (requests and metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from ctd.ensemble.byte_ensemble import ByteEnsemble
from ctd.ensemble.lanes import CONTEXT_MODES, PairScores, score_pairs
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


def score_requests_bytes(
    ensemble: ByteEnsemble,
    pairs: Sequence[tuple[str, str]],
    *,
    context: str = "tokens",
    max_lanes: int = 32,
    progress: bool | None = False,
) -> EnsembleScores:
    """Every member's and the ensemble's log P(continuation bytes | context) of each pair.

    A question's choices share its context, and the continuations of up to `max_lanes` pairs
    (several questions' in `tokens` mode) are stepped byte by byte together
    (`ctd.ensemble.lanes.score_pairs`); each is scored as if alone.

    Args:
        ensemble: the members' byte LMs and the weights.
        pairs: (context, continuation) texts.
        context: `tokens` or `bytes` (see the module docstring).
        max_lanes: most continuations stepped together (memory grows with it).
        progress: show a progress bar (None: only on a terminal).

    Raises:
        ValueError: an unknown context mode, an empty continuation, max_lanes < 1, or a byte
            of probability 0 under a member.
    """
    scored = score_pairs(ensemble, pairs, context=context, max_lanes=max_lanes, progress=progress)
    return _transpose([_request_scores(item) for item in scored])


def _request_scores(item: PairScores) -> tuple[list[RequestScore], RequestScore]:
    """A continuation's per-byte scores -> each member's and the ensemble's `RequestScore`."""
    num_bytes = item.ensemble_logprobs.shape[0]
    members = [
        RequestScore(float(logprobs.sum()), bool(greedy.all()), num_bytes)
        for logprobs, greedy in zip(item.member_logprobs, item.member_greedy, strict=True)
    ]
    pooled = RequestScore(
        float(item.ensemble_logprobs.sum()), bool(item.ensemble_greedy.all()), num_bytes
    )
    return members, pooled


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
