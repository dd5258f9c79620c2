"""The downstream scorer against hand-computed likelihoods and a one-at-a-time HF reference."""

from __future__ import annotations

import math

import pytest
import torch
from downstream_support import (
    byte_tokenizer,
    random_llama,
    subword_tokenizer,
    unigram_llama,
    write_requests,
)

from ctd.alignment import token_bytes
from ctd.evaluation.downstream import (
    RequestScore,
    TokenRequest,
    encode_pair,
    evaluate_questions,
    rolling_windows,
    score_requests,
    task_result,
    text_bits_per_byte,
)
from ctd.evaluation.tasks import GREEDY, MULTIPLE_CHOICE, Question, load_task


def _byte_unigram(seed: int = 0) -> tuple[torch.Tensor, torch.nn.Module]:
    logits = torch.randn(257, generator=torch.Generator().manual_seed(seed)) * 2
    return logits, unigram_llama(logits)


def test_unigram_model_likelihoods_are_the_hand_computed_sums() -> None:
    logits, model = _byte_unigram()
    logp = torch.log_softmax(logits.double(), dim=0)
    tokenizer = byte_tokenizer()
    cases = [
        ("ab", " cd", b" cd"),
        ("Answer: ", "x", b" x"),  # the context's trailing space is scored with the choice
        ("", "hi", b"hi"),  # empty context: conditioned on EOS, every byte scored
    ]
    requests = [encode_pair(tokenizer, context, cont) for context, cont, _ in cases]
    scores = score_requests(model, requests, batch_size=2)
    for (_, _, scored), score in zip(cases, scores, strict=True):
        expected = sum(float(logp[byte]) for byte in scored)
        assert score.num_tokens == len(scored)
        assert score.logprob == pytest.approx(expected, abs=1e-4)
        assert score.is_greedy == all(byte == int(logits[:256].argmax()) for byte in scored)
    assert requests[2].context_ids == (256,)


@torch.no_grad()
def _reference_logprob(model: torch.nn.Module, tokenizer, context: str, cont: str, limit: int):
    """lm-eval-harness's HFLM rule, one unpadded request at a time, from full HF logits."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, cont = context[:-spaces], context[-spaces:] + cont
    whole = tokenizer(context + cont, add_special_tokens=False)["input_ids"]
    n_context = len(tokenizer(context, add_special_tokens=False)["input_ids"])
    cont_ids = whole[n_context:]
    inputs = whole[-(limit + 1) :][:-1]
    logits = model(input_ids=torch.tensor([inputs])).logits[0]  # (T, V)
    logp = torch.log_softmax(logits.float(), dim=-1)[-len(cont_ids) :]
    picked = logp.gather(1, torch.tensor(cont_ids)[:, None])[:, 0]
    greedy = bool((logp.argmax(-1) == torch.tensor(cont_ids)).all())
    return float(picked.sum()), greedy


@pytest.mark.parametrize("max_length", [256, 40])  # 40: contexts cut on the left
def test_batched_scores_match_one_request_at_a_time(max_length: int) -> None:
    tokenizer = subword_tokenizer()
    model = random_llama(len(tokenizer), seed=1)
    pairs = [
        ("Goal: How do I open a jar?\nAnswer:", " Twist the lid with a towel."),
        ("Goal: How do I open a jar?\nAnswer:", " Hit it."),
        ("The cat sat on the ", "mat"),
        ("Question: Which planet is the largest?\nAnswer:", " Jupiter"),
        ("short", " and a much longer continuation than the context"),
        ("The cat sat on the mat, and the dog sat on the log. " * 3, "The end."),
    ]
    requests = [encode_pair(tokenizer, c, x) for c, x in pairs]
    longest = max(len(r.context_ids) + len(r.continuation_ids) for r in requests)
    assert longest > max_length + 1 or max_length == 256  # something is cut at 40
    scores = score_requests(model, requests, batch_size=3, max_length=max_length)
    for (context, cont), score in zip(pairs, scores, strict=True):
        logprob, greedy = _reference_logprob(model, tokenizer, context, cont, max_length)
        assert score.logprob == pytest.approx(logprob, abs=1e-4)
        assert score.is_greedy == greedy


def _spread_bytes_model(tokenizer, byte_logprobs: torch.Tensor) -> torch.nn.Module:
    """A unigram model over `tokenizer` whose token logits are the summed byte log-probs."""
    table = token_bytes(tokenizer)
    logits = torch.tensor(
        [
            float(byte_logprobs[256]) if special else sum(float(byte_logprobs[b]) for b in piece)
            for piece, special in zip(table.bytes_of, table.is_special, strict=True)
        ]
    )
    return unigram_llama(logits)


def test_byte_and_subword_tokenizations_of_one_model_score_consistently() -> None:
    """Byte model p; subword model q(t) = p(bytes of t) / Z: log q = log p - n_tokens log Z."""
    byte_logits, byte_model = _byte_unigram(seed=2)
    byte_logp = torch.log_softmax(byte_logits.double(), dim=0)
    subword = subword_tokenizer()
    subword_model = _spread_bytes_model(subword, byte_logp)
    table = token_bytes(subword)
    log_z = float(torch.logsumexp(subword_model.lm_head.weight[:, 0].double(), dim=0))
    pairs = [
        ("Goal: How do I open a jar?\nAnswer:", " Twist the lid with a towel."),
        ("The cat sat on the", " mat, and the dog sat on the log."),
        ("Answer: ", "Jupiter is the largest planet."),
    ]
    byte_scores = score_requests(
        byte_model, [encode_pair(byte_tokenizer(), c, x) for c, x in pairs]
    )
    subword_requests = [encode_pair(subword, c, x) for c, x in pairs]
    subword_scores = score_requests(subword_model, subword_requests)
    for (context, cont), request, b, s in zip(
        pairs, subword_requests, byte_scores, subword_scores, strict=True
    ):
        scored = (context[len(context.rstrip()) :] + cont).encode()  # trailing spaces move
        assert b"".join(table.bytes_of[i] for i in request.continuation_ids) == scored
        assert s.num_tokens < b.num_tokens  # merges happened
        assert s.logprob + s.num_tokens * log_z == pytest.approx(b.logprob, abs=1e-3)
    text = "The cat sat on the mat. Jupiter is the largest planet."
    byte_bpb = text_bits_per_byte(byte_model, byte_tokenizer(), text, max_length=16)
    subword_bpb = text_bits_per_byte(subword_model, subword, text, max_length=5)
    assert byte_bpb.num_bytes == subword_bpb.num_bytes == len(text.encode())
    subword_nats = subword_bpb.bits_per_byte * subword_bpb.num_bytes * math.log(2)
    byte_nats = byte_bpb.bits_per_byte * byte_bpb.num_bytes * math.log(2)
    assert subword_nats - subword_bpb.num_tokens * log_z == pytest.approx(byte_nats, abs=1e-3)


def test_rolling_windows_score_every_token_once() -> None:
    windows = rolling_windows([5, 6, 7, 8, 9], prefix_id=1, window=2)
    assert windows == [
        TokenRequest((1,), (5, 6)),
        TokenRequest((6,), (7, 8)),
        TokenRequest((8,), (9,)),
    ]


def _forced_task(tmp_path):
    """Gold choices of 'a' bytes, distractors of unlikely bytes, gold at every position."""
    questions = []
    for doc in range(6):
        choices = [(f"Q{doc}: pick", " " + "z" * 5), (f"Q{doc}: pick", " " + "q" * 5)]
        gold = doc % 3
        choices.insert(gold, (f"Q{doc}: pick", " " + "a" * 5))
        questions.append((choices, gold))
    write_requests(tmp_path / "forced" / "rc_0shot", questions)
    return questions


def _forced_model() -> torch.nn.Module:
    logits = torch.zeros(257)
    logits[ord("a")] = 8.0
    return unigram_llama(logits)


def test_a_task_whose_gold_choice_is_forced_scores_100_percent(tmp_path, monkeypatch) -> None:
    from ctd.evaluation import tasks

    _forced_task(tmp_path)
    monkeypatch.setitem(tasks.TASKS, "forced", tasks.TaskSpec("forced/rc_0shot"))
    questions = load_task("forced", root=tmp_path)
    assert [q.gold for q in questions] == [0, 1, 2, 0, 1, 2]  # unconditional requests skipped
    assert all(len(q.contexts) == 3 for q in questions)
    result = evaluate_questions(_forced_model(), byte_tokenizer(), questions, MULTIPLE_CHOICE)
    assert result.num_questions == 6
    assert result.acc == 1.0
    assert result.acc_per_byte == 1.0
    wrong = [Question(q.doc_id, q.contexts, q.continuations, (q.gold + 1) % 3) for q in questions]
    result = evaluate_questions(_forced_model(), byte_tokenizer(), wrong, MULTIPLE_CHOICE)
    assert result.acc == 0.0


def test_acc_per_byte_divides_by_utf8_bytes_not_tokens() -> None:
    """Uniform over bytes: a longer choice has a lower sum but the same per-byte score."""
    model = unigram_llama(torch.zeros(257))
    question = Question(0, ("x", "x"), (" é" * 4, " ab"), gold=0)  # 12 bytes vs 3 bytes
    result = evaluate_questions(model, byte_tokenizer(), [question], MULTIPLE_CHOICE)
    assert result.acc == 0.0  # the shorter choice has the higher sum
    assert result.acc_per_byte == 1.0  # tie per byte: the first (gold) wins
    assert result.gold_bits_per_byte == pytest.approx(math.log2(257))


def test_acc_per_byte_uses_bytes_when_tokens_span_several() -> None:
    """Choice 0: 6 bytes in 1 token, -6 nats; choice 1: 1 byte in 2 tokens, -2 nats."""
    question = Question(0, ("x", "x"), ("abcdef", "g"), gold=0)
    scores = [RequestScore(-6.0, False, 1), RequestScore(-2.0, False, 2)]
    result = task_result([question], scores, MULTIPLE_CHOICE)
    assert (result.acc, result.acc_per_byte) == (0.0, 1.0)  # per byte: -1 beats -2
    assert result.gold_bits_per_byte == pytest.approx(6 / math.log(2) / 6)


def test_greedy_task_counts_exact_greedy_continuations() -> None:
    model = _forced_model()
    questions = [Question(0, ("x",), ("aaa",), 0), Question(1, ("x",), ("aab",), 0)]
    result = evaluate_questions(model, byte_tokenizer(), questions, GREEDY)
    assert result.acc == 0.5
    assert result.acc_per_byte is None
