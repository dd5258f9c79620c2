"""Zero-shot downstream scoring of any causal LM: multiple choice by log-likelihood, and BPB.

A request is a (context, continuation) pair. It is tokenized with lm-eval-harness's rule for
Hugging Face models (`HFLM._encode_pair`): trailing spaces of the context move to the start of
the continuation, the concatenation is tokenized once, and the continuation's tokens are the
ones after the context's own token count; an empty context becomes the model's BOS (else EOS)
token. Inputs longer than the model's context are cut on the left. Its score is the summed
log-probability of the continuation tokens, and whether each is the argmax (greedy).

A multiple-choice question is answered by the choice with the highest score (`acc`), or with
the highest score per UTF-8 byte of its continuation (`acc_per_byte`, which does not depend on
how a tokenizer cuts the text, so models with different tokenizers compare fairly); a greedy
task (LAMBADA) by whether greedy decoding gives the continuation. The bits per byte of a whole
text (rolling windows) are in `ctd.evaluation.text_bpb` (also importable from here).
Reference: Gao et al., lm-evaluation-harness; Gu et al. 2024, OLMES (arXiv 2406.08446).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from ctd.evaluation.packing import PackedRow, pack_requests, packed_hidden
from ctd.evaluation.requests import (
    RequestScore,
    TokenRequest,
    encode_pair,
    encode_text,
    model_input,
    model_max_length,
    move_trailing_spaces,
    prefix_token_id,
)
from ctd.evaluation.tasks import GREEDY, Question

if TYPE_CHECKING:  # moved to ctd.evaluation.text_bpb, still importable from here (__getattr__)
    from ctd.evaluation.text_bpb import TextResult as TextResult
    from ctd.evaluation.text_bpb import rolling_windows as rolling_windows
    from ctd.evaluation.text_bpb import text_bits_per_byte as text_bits_per_byte

HEAD_ROWS_PER_CHUNK = 256
"""Positions whose logits are computed at once (bounds memory for large vocabularies)."""

ScoreT = TypeVar("ScoreT")

__all__ = [
    "RequestScore",
    "TaskResult",
    "TokenRequest",
    "continuation_hidden",
    "encode_pair",
    "encode_text",
    "evaluate_questions",
    "in_batches",
    "model_input",
    "model_max_length",
    "move_trailing_spaces",
    "output_logits",
    "prefix_token_id",
    "question_pairs",
    "question_requests",
    "request_scores",
    "score_requests",
    "task_result",
]


def output_logits(model: nn.Module, hidden_rows: Tensor) -> Tensor:
    """The head's logits of some hidden states in float32, soft-capped if the model is.

    Shapes: hidden_rows (n, d) -> (n, V).
    """
    head: Any = model.get_output_embeddings()  # type: ignore[operator]
    softcap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    logits: Tensor = head(hidden_rows).float()
    return torch.tanh(logits / softcap) * softcap if softcap else logits


def _head_scores(model: nn.Module, hidden_rows: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Log-probability of each target and whether it is the argmax, a chunk of rows at a time.

    Shapes: hidden_rows (N, d), targets (N,) -> (N,) float32, (N,) bool.
    """
    logprobs, greedy = [], []
    for start in range(0, hidden_rows.shape[0], HEAD_ROWS_PER_CHUNK):
        rows = slice(start, start + HEAD_ROWS_PER_CHUNK)
        logits = output_logits(model, hidden_rows[rows])  # (n, V)
        picked = F.log_softmax(logits, dim=-1).gather(1, targets[rows, None])[:, 0]
        logprobs.append(picked)
        greedy.append(logits.argmax(dim=-1) == targets[rows])
    return torch.cat(logprobs), torch.cat(greedy)


def continuation_hidden(
    model: nn.Module, inputs: Sequence[list[int]], requests: Sequence[TokenRequest]
) -> tuple[Tensor, Tensor]:
    """Last hidden states that predict each continuation token, right-padded in one forward.

    Rows are in request order, each request's continuation tokens in order.

    Shapes: returns hidden_rows (N, d) and targets (N,) long, N = all continuation tokens.
    """
    device = next(model.parameters()).device
    length = max(len(ids) for ids in inputs)
    input_ids = torch.zeros(len(inputs), length, dtype=torch.long)
    attention_mask = torch.zeros(len(inputs), length, dtype=torch.long)
    rows: list[int] = []
    positions: list[int] = []
    targets: list[int] = []
    for row, (ids, request) in enumerate(zip(inputs, requests, strict=True)):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        count = len(request.continuation_ids)
        rows += [row] * count
        positions += range(len(ids) - count, len(ids))
        targets += request.continuation_ids
    base: Any = model.base_model
    hidden = base(
        input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)
    ).last_hidden_state  # (B, T, d)
    return hidden[torch.tensor(rows), torch.tensor(positions)], torch.tensor(targets, device=device)


def request_scores(
    logprobs: Tensor, greedy: Tensor, requests: Sequence[TokenRequest]
) -> list[RequestScore]:
    """Sum each request's token log-probs (rows in request order, as `continuation_hidden`).

    Shapes: logprobs (N,), greedy (N,) bool.
    """
    scores, start = [], 0
    for request in requests:
        end = start + len(request.continuation_ids)
        scores.append(
            RequestScore(
                float(logprobs[start:end].sum()), bool(greedy[start:end].all()), end - start
            )
        )
        start = end
    return scores


def _score_batch(
    model: nn.Module, inputs: Sequence[list[int]], requests: Sequence[TokenRequest]
) -> list[RequestScore]:
    """Score right-padded inputs in one forward pass."""
    hidden_rows, targets = continuation_hidden(model, inputs, requests)
    logprobs, greedy = _head_scores(model, hidden_rows, targets)
    return request_scores(logprobs, greedy, requests)


def _batches(order: list[int], batch_size: int) -> Iterator[list[int]]:
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def in_batches(
    inputs: Sequence[list[int]],
    requests: Sequence[TokenRequest],
    score_batch: Callable[[list[list[int]], list[TokenRequest]], list[ScoreT]],
    *,
    batch_size: int,
    progress: bool | None,
) -> list[ScoreT]:
    """Apply `score_batch` to batches of requests, longest input first; results in input order.

    Raises:
        ValueError: batch_size < 1.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(requests)), key=lambda i: -len(inputs[i]))
    scores: dict[int, ScoreT] = {}
    batches = list(_batches(order, batch_size))
    for batch in tqdm(batches, desc="scoring", disable=None if progress is None else not progress):
        batch_scores = score_batch([inputs[i] for i in batch], [requests[i] for i in batch])
        scores.update(zip(batch, batch_scores, strict=True))
    return [scores[index] for index in range(len(requests))]


def sliding_window(model: nn.Module) -> int | None:
    """The model's attention window if its config has one (Gemma 3, Mistral), else None."""
    config: Any = getattr(model, "config", None)
    text_config = config.get_text_config(decoder=True) if config is not None else None
    window = getattr(text_config, "sliding_window", None)
    return int(window) if window else None


def _row_batches(rows: list[PackedRow], batch_size: int) -> Iterator[list[PackedRow]]:
    """Rows, longest first, in batches of about `batch_size` requests (at least one row)."""
    batch: list[PackedRow] = []
    count = 0
    for row in sorted(rows, key=lambda row: -row.length):
        if batch and count + len(row.requests) > batch_size:
            yield batch
            batch, count = [], 0
        batch.append(row)
        count += len(row.requests)
    if batch:
        yield batch


def _score_plain(
    model: nn.Module,
    requests: Sequence[TokenRequest],
    max_length: int,
    batch_size: int,
    progress: bool | None,
) -> list[RequestScore]:
    """Score requests one padded row each, batched longest first (lm-eval-harness's layout)."""
    return in_batches(
        [model_input(request, max_length) for request in requests],
        requests,
        lambda batch_inputs, batch_requests: _score_batch(model, batch_inputs, batch_requests),
        batch_size=batch_size,
        progress=progress,
    )


def _score_packed(
    model: nn.Module,
    requests: Sequence[TokenRequest],
    max_length: int,
    batch_size: int,
    progress: bool | None,
) -> list[RequestScore]:
    """Score requests with shared contexts packed into one row each (`ctd.evaluation.packing`)."""
    from tqdm.auto import tqdm

    rows, left_out = pack_requests(requests, max_length, sliding_window(model))
    scores: dict[int, RequestScore] = {}
    batches = list(_row_batches(rows, batch_size))
    for batch in tqdm(batches, desc="scoring", disable=None if progress is None else not progress):
        hidden_rows, targets, order = packed_hidden(model, batch, requests)
        logprobs, greedy = _head_scores(model, hidden_rows, targets)
        batch_requests = [requests[index] for index in order]
        scores.update(zip(order, request_scores(logprobs, greedy, batch_requests), strict=True))
    plain = [requests[index] for index in left_out]  # one row each, the model's own mask
    plain_scores = _score_plain(model, plain, max_length, batch_size, progress=False)
    scores.update(zip(left_out, plain_scores, strict=True))
    return [scores[index] for index in range(len(requests))]


@torch.no_grad()
def score_requests(
    model: nn.Module,
    requests: Sequence[TokenRequest],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    progress: bool | None = False,
    share_contexts: bool = True,
) -> list[RequestScore]:
    """Score token requests in batches, longest first; results in the order given.

    Args:
        model: A Hugging Face causal LM (`base_model` gives the last hidden state; with
            `share_contexts`, it takes a 4-D attention mask and position ids).
        requests: The requests.
        batch_size: Requests per forward pass (about, with `share_contexts`).
        max_length: The model's context (default `model_max_length(model)`).
        progress: Show a progress bar (None: only on a terminal).
        share_contexts: Run a context shared by several requests once
            (`ctd.evaluation.packing`); False: one padded row per request.

    Raises:
        ValueError: A continuation longer than the context, or batch_size < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    limit = max_length if max_length is not None else model_max_length(model)
    was_training = model.training
    model.eval()
    try:
        if share_contexts:
            return _score_packed(model, requests, limit, batch_size, progress)
        return _score_plain(model, requests, limit, batch_size, progress)
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class TaskResult:
    """Accuracy on one task; `acc_per_byte` is None for a greedy task."""

    num_questions: int
    acc: float
    acc_per_byte: float | None
    gold_bits_per_byte: float
    """Bits per UTF-8 byte of the gold continuations given their contexts."""


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def task_result(
    questions: Sequence[Question], scores: Sequence[RequestScore], kind: str
) -> TaskResult:
    """Aggregate the scores of every choice of every question (in question, choice order)."""
    correct = per_byte_correct = 0
    gold_nats, gold_bytes = 0.0, 0
    start = 0
    for question in questions:
        choices = scores[start : start + len(question.continuations)]
        start += len(choices)
        num_bytes = [len(text.encode("utf-8")) for text in question.continuations]
        if kind == GREEDY:
            correct += choices[question.gold].is_greedy
        else:
            correct += _argmax([s.logprob for s in choices]) == question.gold
            per_byte = [s.logprob / max(1, n) for s, n in zip(choices, num_bytes, strict=True)]
            per_byte_correct += _argmax(per_byte) == question.gold
        gold_nats -= choices[question.gold].logprob
        gold_bytes += num_bytes[question.gold]
    count = max(1, len(questions))
    return TaskResult(
        len(questions),
        correct / count,
        None if kind == GREEDY else per_byte_correct / count,
        gold_nats / math.log(2.0) / max(1, gold_bytes),
    )


def question_pairs(questions: Sequence[Question]) -> list[tuple[str, str]]:
    """(context, continuation) of every choice of every question, in `task_result`'s order."""
    return [
        (context, continuation)
        for question in questions
        for context, continuation in zip(question.contexts, question.continuations, strict=True)
    ]


def question_requests(
    tokenizer: Any, questions: Sequence[Question], *, add_special_tokens: bool = False
) -> list[TokenRequest]:
    """`encode_pair` of every choice of every question, in `task_result`'s order."""
    return [
        encode_pair(tokenizer, context, continuation, add_special_tokens=add_special_tokens)
        for context, continuation in question_pairs(questions)
    ]


def evaluate_questions(
    model: nn.Module,
    tokenizer: Any,
    questions: Sequence[Question],
    kind: str,
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    add_special_tokens: bool = False,
    progress: bool | None = False,
) -> TaskResult:
    """Score every choice of every question and aggregate (`task_result`)."""
    requests = question_requests(tokenizer, questions, add_special_tokens=add_special_tokens)
    scores = score_requests(
        model, requests, batch_size=batch_size, max_length=max_length, progress=progress
    )
    return task_result(questions, scores, kind)


_IN_TEXT_BPB = frozenset({"TextResult", "rolling_windows", "text_bits_per_byte"})


def __getattr__(name: str) -> object:
    """`TextResult`, `rolling_windows` and `text_bits_per_byte`, from `ctd.evaluation.text_bpb`.

    Looked up on first use: that module builds on this one, so importing it here would be
    circular.

    Raises:
        AttributeError: any other name.
    """
    if name in _IN_TEXT_BPB:
        from ctd.evaluation import text_bpb

        return getattr(text_bpb, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
