"""Shared-context packing: rows worked out by hand, and scores equal to one request at a time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from downstream_support import random_llama, subword_tokenizer

from ctd.evaluation.downstream import encode_pair, score_requests
from ctd.evaluation.packing import PackedRow, pack_requests
from ctd.evaluation.requests import TokenRequest

sys.path.insert(0, str(Path(__file__).parents[1] / "decoding"))
from decoding_support import tiny_gemma3  # noqa: E402


def test_requests_are_grouped_by_the_prefix_their_input_reads() -> None:
    requests = [
        TokenRequest((1, 2, 3), (4, 5)),
        TokenRequest((1, 2), (7, 8, 9)),
        TokenRequest((1, 2, 3), (6,)),
        TokenRequest((9, 1, 2, 3), (4, 5)),  # cut on the left at 4: reads (1, 2, 3) + (4,)
    ]
    rows, left_out = pack_requests(requests, max_length=4)
    assert rows == [PackedRow((1, 2, 3), (0, 2, 3), ((4,), (), (4,)))]
    assert left_out == [1]  # its prefix (1, 2) is its own
    assert rows[0].length == 5
    rows, left_out = pack_requests(requests, max_length=4, window=3)  # inputs of 4 positions
    assert rows == []  # request 2 (3 positions) would be alone
    assert left_out == [0, 1, 2, 3]


@torch.no_grad()
def _one_at_a_time(model: torch.nn.Module, request: TokenRequest, limit: int) -> float:
    """Summed continuation log-prob from a plain forward of the request alone (no packing)."""
    whole = [*request.context_ids, *request.continuation_ids]
    inputs = whole[-(limit + 1) :][:-1]
    logits = model(input_ids=torch.tensor([inputs])).logits[0].float()  # (T, V)
    logp = torch.log_softmax(logits, dim=-1)[-len(request.continuation_ids) :]
    targets = torch.tensor(request.continuation_ids)[:, None]
    return float(logp.gather(1, targets).sum())


QUESTIONS = [
    ("Goal: How do I open a jar?\nAnswer:", [" Twist the lid.", " Hit it hard.", " Pray"]),
    ("Question: Which planet is the largest?\nAnswer:", [" Jupiter", " Mars", " the Sun", " A"]),
    ("The cat sat on the", [" mat", " mat, and the dog sat on the log."]),
    ("short", [" and a longer one"]),
]


@pytest.mark.parametrize("max_length", [256, 16])  # 16: some inputs cut on the left
@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_packed_scores_equal_each_request_scored_alone(kind: str, max_length: int) -> None:
    tokenizer = subword_tokenizer()
    if kind == "llama":
        model = random_llama(len(tokenizer), seed=3)
    else:  # a window shorter than some requests, longer than others, shorter than the rows
        model = tiny_gemma3(len(tokenizer), sliding_window=18, seed=3).float()
    requests = [
        encode_pair(tokenizer, context, choice)
        for context, choices in QUESTIONS
        for choice in choices
    ]
    longest = max(len(r.context_ids) + len(r.continuation_ids) for r in requests)
    assert max_length == 256 or longest > max_length + 1
    rows, left_out = pack_requests(requests, max_length, 18 if kind == "gemma3" else None)
    assert any(len(row.requests) > 1 for row in rows)  # something is shared
    if kind == "gemma3" and max_length == 256:  # (at 16 every input fits the window)
        assert left_out
        assert any(row.length > 18 for row in rows)
    packed = score_requests(model, requests, batch_size=3, max_length=max_length)
    unpacked = score_requests(
        model, requests, batch_size=3, max_length=max_length, share_contexts=False
    )
    for request, score, plain in zip(requests, packed, unpacked, strict=True):
        reference = _one_at_a_time(model, request, max_length)
        assert score.logprob == pytest.approx(reference, abs=1e-4)
        assert plain.logprob == pytest.approx(reference, abs=1e-4)
        assert score.is_greedy == plain.is_greedy
        assert score.num_tokens == len(request.continuation_ids)
