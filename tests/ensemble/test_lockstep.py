"""Lockstep ensembles: pooling by hand, identical members, Jensen, cached = uncached, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ensemble_support import fixture_tokenizer, tiny_bpe, tiny_llama

from ctd.decoding import CachedModel, generate
from ctd.ensemble import (
    LockstepEnsemble,
    bits_per_byte_report,
    check_shared_tokenizer,
    combine_logprobs,
    normalized_weights,
    score_lockstep,
)

CORPUS = Path(__file__).parents[3] / "shared" / "assets" / "corpora" / "text"


def test_pooling_by_hand() -> None:
    first, second = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.1, 0.1, 0.8])
    logits = torch.stack([first.log() + 2.0, second.log() - 1.0]).double()  # any shift
    weights = torch.tensor([0.25, 0.75], dtype=torch.float64)
    linear = combine_logprobs(logits, weights, "mean_prob").exp()
    torch.testing.assert_close(linear, (0.25 * first + 0.75 * second).double())
    geometric = first.double() ** 0.25 * second.double() ** 0.75
    torch.testing.assert_close(
        combine_logprobs(logits, weights, "mean_logprob").exp(), geometric / geometric.sum()
    )
    one_hot = torch.tensor([1.0, 0.0], dtype=torch.float64)
    for combine in ("mean_prob", "mean_logprob"):
        torch.testing.assert_close(
            combine_logprobs(logits, one_hot, combine), torch.log_softmax(logits[0], -1)
        )


@pytest.mark.parametrize("combine", ["mean_prob", "mean_logprob"])
def test_identical_members_give_the_models_scores_and_generations(combine) -> None:  # type: ignore[no-untyped-def]
    model = tiny_llama(64, seed=1)
    ensemble = LockstepEnsemble([model, model, model], [1, 2, 3], combine=combine)
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(0))
    member_lp, pooled = ensemble.score(ids)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits, -1)
    expected = logprobs[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
    torch.testing.assert_close(pooled[:, 1:], expected)
    torch.testing.assert_close(member_lp[2, :, 1:], expected)
    prompt = ids[:, :3]
    alone = generate(CachedModel(model), prompt, 12)
    assert torch.equal(ensemble.generate(prompt, 12), alone)
    sampled = generate(
        CachedModel(model), prompt, 12, temperature=1.0, generator=torch.Generator().manual_seed(7)
    )
    ours = ensemble.generate(
        prompt, 12, temperature=1.0, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(ours, sampled)


def test_cached_steps_equal_the_uncached_score() -> None:
    models = [tiny_llama(64, seed=seed) for seed in (1, 2)]
    ensemble = LockstepEnsemble(models, [0.3, 0.7])
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    _, pooled = ensemble.score(ids)
    prefill = ensemble.prefill(ids[:, :5])
    stepped = torch.cat([prefill, ensemble.step(ids[:, 5:7]), ensemble.step(ids[:, 7:])], 1)
    assert ensemble.length == 8
    picked = stepped[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
    torch.testing.assert_close(picked, pooled[:, 1:])
    ensemble.rollback(3)
    torch.testing.assert_close(ensemble.step(ids[:, 5:6]), stepped[:, 5:6])


def _real_text() -> list[str]:
    path = CORPUS / "debian-reference.en.txt"
    if path.is_file():
        text = path.read_text(encoding="utf-8")[20_000:21_200]
    else:  # the shared assets are absent: a public-domain sentence
        text = "In the beginning God created the heaven and the earth. " * 22
    return [text[i : i + 200] for i in range(0, 1200, 200)]


def test_probability_average_nll_is_at_most_the_mean_member_nll() -> None:
    tokenizer = fixture_tokenizer("smollm2", bos="<|im_start|>", eos="<|im_end|>")
    models = [tiny_llama(len(tokenizer), seed=seed, width=16).float() for seed in (1, 2, 3)]
    weights = [0.2, 0.5, 0.3]
    report = bits_per_byte_report(
        score_lockstep(LockstepEnsemble(models, weights), tokenizer, _real_text(), batch_size=4)
    )
    mean_member = sum(w * bpb for w, bpb in zip(weights, report.member_bpb, strict=True))
    assert report.ensemble_bpb <= mean_member
    assert report.ensemble_bpb < min(report.member_bpb) + 1.0  # sanity: not far off
    alone = bits_per_byte_report(
        score_lockstep(LockstepEnsemble(models[:1]), tokenizer, _real_text())
    )
    assert alone.ensemble_bpb == pytest.approx(report.member_bpb[0], rel=1e-9)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        normalized_weights(None, 0)
    with pytest.raises(ValueError, match="non-negative"):
        normalized_weights([1, -1], 2)
    with pytest.raises(ValueError, match="positive"):
        normalized_weights([0, 0], 2)
    with pytest.raises(ValueError, match="2 weights for 3"):
        normalized_weights([1, 1], 3)
    with pytest.raises(ValueError, match="must share a tokenizer"):
        check_shared_tokenizer([tiny_bpe(280), tiny_bpe(300)], ["a", "b"])
    assert check_shared_tokenizer([tiny_bpe(280), tiny_bpe(280)]) == 280
    with pytest.raises(ValueError, match="combine"):
        LockstepEnsemble([tiny_llama(8)], combine="mean_logits")
