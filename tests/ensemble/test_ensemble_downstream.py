"""Multiple-choice scoring with ensembles against ctd evaluate, plain forwards and brute force."""

from __future__ import annotations

import math

import pytest
import torch
from ensemble_support import brute_force_logprob, tiny_bpe, tiny_llama

from ctd.ensemble import ByteEnsemble, ByteLM, LockstepEnsemble, byte_lm
from ctd.ensemble.downstream import (
    evaluate_bytes,
    evaluate_lockstep,
    score_requests_bytes,
    score_requests_lockstep,
)
from ctd.evaluation.downstream import encode_pair, evaluate_questions, score_requests
from ctd.evaluation.tasks import MULTIPLE_CHOICE, Question

PAIRS = [
    ("the rat sat on a", " hat"),
    ("the rat sat on a", " mat, a cat"),
    ("then a cat ran at ", "the rat"),  # a trailing space moves to the continuation
    ("a hat, a rat,", " that cat"),
]
QUESTIONS = [
    Question(0, (PAIRS[0][0], PAIRS[1][0]), (PAIRS[0][1], PAIRS[1][1]), 1),
    Question(1, (PAIRS[2][0], PAIRS[3][0]), (PAIRS[2][1], PAIRS[3][1]), 0),
]


@pytest.fixture(scope="module")
def bpe():  # type: ignore[no-untyped-def]
    tokenizer = tiny_bpe()
    return tokenizer, tiny_llama(len(tokenizer), seed=1), tiny_llama(len(tokenizer), seed=2)


@pytest.mark.parametrize("combine", ["mean_prob", "mean_logprob"])
def test_identical_lockstep_members_score_as_ctd_evaluate(bpe, combine) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model, _ = bpe
    requests = [encode_pair(tokenizer, context, cont) for context, cont in PAIRS]
    alone = score_requests(model, requests, batch_size=3)
    ensemble = LockstepEnsemble([model, model], [1, 3], combine=combine)
    ours = score_requests_lockstep(ensemble, requests, batch_size=3)
    for index, expected in enumerate(alone):
        for score in (ours.ensemble_scores[index], *(m[index] for m in ours.member_scores)):
            assert score.logprob == pytest.approx(expected.logprob, abs=1e-5)
            assert (score.is_greedy, score.num_tokens) == (expected.is_greedy, expected.num_tokens)
    result = evaluate_lockstep(ensemble, tokenizer, QUESTIONS, MULTIPLE_CHOICE, batch_size=2)
    reference = evaluate_questions(model, tokenizer, QUESTIONS, MULTIPLE_CHOICE)
    for got in (result.ensemble, *result.members):
        assert (got.acc, got.acc_per_byte) == (reference.acc, reference.acc_per_byte)
        assert got.gold_bits_per_byte == pytest.approx(reference.gold_bits_per_byte, rel=1e-5)


@pytest.mark.parametrize("combine", ["mean_prob", "mean_logprob"])
def test_lockstep_scores_equal_a_brute_force_pool_of_plain_forwards(bpe, combine) -> None:  # type: ignore[no-untyped-def]
    tokenizer, first, second = bpe
    requests = [encode_pair(tokenizer, context, cont) for context, cont in PAIRS]
    ensemble = LockstepEnsemble([first, second], [1, 3], combine=combine)
    ours = score_requests_lockstep(ensemble, requests, batch_size=2)
    for index, request in enumerate(requests):
        ids = torch.tensor([[*request.context_ids, *request.continuation_ids]])
        with torch.no_grad():  # one unpadded forward per member, the whole vocabulary
            tables = [torch.log_softmax(m(input_ids=ids).logits[0].double(), -1) for m in bpe[1:]]
        count = len(request.continuation_ids)
        rows = range(ids.shape[1] - count - 1, ids.shape[1] - 1)
        targets = request.continuation_ids
        pooled_total, pooled_greedy = 0.0, True
        for row, target in zip(rows, targets, strict=True):
            a, b = tables[0][row], tables[1][row]
            if combine == "mean_prob":
                pooled = torch.log(0.25 * a.exp() + 0.75 * b.exp())
            else:
                pooled = torch.log_softmax(0.25 * a + 0.75 * b, -1)
            pooled_total += float(pooled[target])
            pooled_greedy &= int(pooled.argmax()) == target
        assert ours.ensemble_scores[index].logprob == pytest.approx(pooled_total, abs=1e-4)
        assert ours.ensemble_scores[index].is_greedy == pooled_greedy
        for member, table in enumerate(tables):
            expected = sum(float(table[row, t]) for row, t in zip(rows, targets, strict=True))
            assert ours.member_scores[member][index].logprob == pytest.approx(expected, abs=1e-4)


SHORT = [("th", "e c"), ("a", " hat")]  # brute force is exponential in the bytes


@pytest.mark.parametrize("context_mode", ["bytes", "tokens"])
def test_exact_byte_scores_equal_brute_force_over_tokenizations(bpe, context_mode) -> None:  # type: ignore[no-untyped-def]
    """bytes: log P(context + cont) - log P(context); tokens: log P(cont | context's tokens)."""
    tokenizer, model, _ = bpe
    lm = ByteLM(model, tokenizer, beam_width=None)
    ours = score_requests_bytes(ByteEnsemble([lm]), SHORT, context=context_mode)
    bos = [tokenizer.bos_token_id]
    for (context, cont), score in zip(SHORT, ours.ensemble_scores, strict=True):
        data = cont.encode()
        if context_mode == "bytes":
            joint = brute_force_logprob(
                model, tokenizer, (context + cont).encode(), context=bos, with_eos=False
            )
            head = brute_force_logprob(
                model, tokenizer, context.encode(), context=bos, with_eos=False
            )
            expected = joint - head
        else:
            ids = tokenizer(context, add_special_tokens=False).input_ids
            expected = brute_force_logprob(
                model, tokenizer, data, context=[*bos, *ids], with_eos=False
            )
        assert score.logprob == pytest.approx(expected, abs=1e-9)
        assert score.num_tokens == len(data)
        assert ours.member_scores[0][0].logprob == ours.ensemble_scores[0].logprob


def test_exact_byte_ensemble_scores_equal_the_tail_of_its_text_scores(bpe) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model, _ = bpe
    other = tiny_bpe(300, ["hat cat bat", "that rat sat"])
    members = [
        ByteLM(model, tokenizer, beam_width=None),
        ByteLM(tiny_llama(len(other), seed=3), other, beam_width=None),
    ]
    ensemble = ByteEnsemble(members, [1, 3])
    pairs = [("a h", "at"), ("a h", "a")]
    ours = score_requests_bytes(ensemble, pairs, context="bytes")
    for index, (context, cont) in enumerate(pairs):
        whole = ensemble.score((context + cont).encode(), keep_canonical=False)
        cut = len(context.encode())
        expected = whole.ensemble_logprobs[cut:].sum()
        assert ours.ensemble_scores[index].logprob == pytest.approx(expected, abs=1e-9)
        for member in range(2):
            expected = whole.member_logprobs[member, cut:].sum()
            assert ours.member_scores[member][index].logprob == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("context_mode", ["bytes", "tokens"])
def test_choices_sharing_a_context_are_scored_as_if_alone(bpe, context_mode, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The context is handled once; each choice advances its own fork of its state."""
    tokenizer, model, _ = bpe
    monkeypatch.setattr(byte_lm, "COMPACT_SLACK", 0)  # compact often: lanes keep each other's slots
    lm = ByteLM(model, tokenizer, beam_width=2)
    pairs = [(PAIRS[1][0], PAIRS[1][1] * 2), PAIRS[0]]  # a long first choice gets compacted
    together = score_requests_bytes(ByteEnsemble([lm]), pairs, context=context_mode)
    shared_calls = lm.forward_calls
    alone = []
    for pair in pairs:
        scores = score_requests_bytes(ByteEnsemble([lm]), [pair], context=context_mode)
        alone += scores.ensemble_scores
    assert [s.logprob for s in together.ensemble_scores] == [s.logprob for s in alone]
    assert lm.forward_calls - shared_calls > shared_calls  # the context was handled twice


def test_questions_stepped_together_score_as_one_at_a_time(bpe, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Lanes of several questions on one tree per member: the same scores, fewer forwards."""
    tokenizer, model, other_model = bpe
    monkeypatch.setattr(byte_lm, "COMPACT_SLACK", 0)
    other = tiny_bpe(300, ["hat cat bat", "that rat sat"])
    members = [
        ByteLM(model, tokenizer, beam_width=2),
        ByteLM(tiny_llama(len(other), seed=3), other, beam_width=3),
    ]
    pairs = [*PAIRS, ("a hat, a rat,", " a mat")]  # 4 contexts, 5 requests
    together = score_requests_bytes(ByteEnsemble(members), pairs, max_lanes=32)
    calls = [member.forward_calls for member in members]
    alone = score_requests_bytes(ByteEnsemble(members), pairs, max_lanes=1)
    for member, before in zip(members, calls, strict=True):
        assert member.forward_calls - before > 2 * before
    for ours, theirs in [
        (together.ensemble_scores, alone.ensemble_scores),
        *zip(together.member_scores, alone.member_scores, strict=True),
    ]:
        for a, b in zip(ours, theirs, strict=True):
            assert a.logprob == pytest.approx(b.logprob, abs=1e-9)
            assert (a.is_greedy, a.num_tokens) == (b.is_greedy, b.num_tokens)
    with pytest.raises(ValueError, match="max_lanes must be at least 1"):
        score_requests_bytes(ByteEnsemble(members), pairs, max_lanes=0)


@pytest.mark.parametrize("beam_width", [1, 2])
def test_a_beam_never_scores_a_choice_below_its_tokens_after_the_context(bpe, beam_width) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model, _ = bpe
    lm = ByteLM(model, tokenizer, beam_width=beam_width)
    ours = score_requests_bytes(ByteEnsemble([lm]), PAIRS, context="tokens")
    for (context, cont), score in zip(PAIRS, ours.ensemble_scores, strict=True):
        context, cont = context.rstrip(), context[len(context.rstrip()) :] + cont
        head = tokenizer(context, add_special_tokens=False).input_ids
        tail = tokenizer(cont, add_special_tokens=False).input_ids  # the continuation's own
        ids = torch.tensor([[tokenizer.bos_token_id, *head, *tail]])
        with torch.no_grad():
            table = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        start = 1 + len(head)
        canonical = sum(float(table[start - 1 + t, token]) for t, token in enumerate(tail))
        assert score.logprob >= canonical - 1e-9


def test_byte_task_results_aggregate_as_ctd_evaluate(bpe) -> None:  # type: ignore[no-untyped-def]
    tokenizer, model, _ = bpe
    lm = ByteLM(model, tokenizer, beam_width=1)
    result = evaluate_bytes(ByteEnsemble([lm, lm]), QUESTIONS, MULTIPLE_CHOICE)
    scores = score_requests_bytes(ByteEnsemble([lm]), PAIRS).ensemble_scores
    gold = [scores[1], scores[2]]  # question 0's gold is choice 1, question 1's choice 0
    nats = -sum(score.logprob for score in gold)
    num_bytes = len(PAIRS[1][1].encode()) + len(PAIRS[2][1].encode())
    assert result.ensemble.gold_bits_per_byte == pytest.approx(nats / math.log(2) / num_bytes)
    assert result.members[0] == result.members[1]
    with pytest.raises(ValueError, match="context must be one of"):
        score_requests_bytes(ByteEnsemble([lm]), PAIRS, context="chars")
