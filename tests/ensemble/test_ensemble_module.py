"""EnsembleModule: its figures equal the library's; learning moves only the weights."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from ensemble_support import TEXTS, tiny_bpe, tiny_llama

from ctd.ensemble import (
    ByteEnsemble,
    ByteLM,
    LockstepEnsemble,
    bits_per_byte_report,
    score_bytes,
    score_lockstep,
)
from ctd.trainers.ensemble import EnsembleModule, text_dataloader


def _trainer(**options: object) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,  # type: ignore[arg-type]
    )


def test_validate_test_and_predict_report_every_member_on_the_same_bytes() -> None:
    first, second = tiny_bpe(280), tiny_bpe(300, ["hat cat bat", "that rat sat"])
    members = [
        ByteLM(tiny_llama(len(first), seed=1), first, beam_width=2),
        ByteLM(tiny_llama(len(second), seed=2), second, beam_width=2),
    ]
    score = functools.partial(score_bytes, ByteEnsemble(members, [1, 1]))
    module = EnsembleModule(score, ["first", "second"])
    texts = ["the cat", "a hat, that mat"]
    logged = _trainer().validate(module, text_dataloader(texts, 1), verbose=False)[0]
    expected = bits_per_byte_report(score(texts))
    assert logged["val/bpb_first"] == pytest.approx(expected.member_bpb[0], rel=1e-6)
    assert logged["val/bpb_second"] == pytest.approx(expected.member_bpb[1], rel=1e-6)
    assert logged["val/bpb_ensemble"] == pytest.approx(expected.ensemble_bpb, rel=1e-6)
    assert logged["val/num_bytes"] == sum(len(text) for text in texts)
    tested = _trainer().test(module, text_dataloader(texts, 2), verbose=False)[0]
    assert tested["test/bpb_ensemble"] == pytest.approx(expected.ensemble_bpb, rel=1e-6)
    predicted = _trainer().predict(module, text_dataloader(texts[:1], 1))
    assert predicted[0][0]["num_bytes"] == len(texts[0])


def test_learning_moves_only_the_weights_toward_the_better_member() -> None:
    tokenizer = tiny_bpe(280)
    good = tiny_llama(len(tokenizer), seed=1)
    flat = tiny_llama(len(tokenizer), seed=2)
    with torch.no_grad():
        flat.lm_head.weight.mul_(3.0)  # over-confident noise: much worse bits per byte
    ensemble = LockstepEnsemble([good, flat])
    score = functools.partial(score_lockstep, ensemble, tokenizer)
    before = {name: p.clone() for name, p in good.named_parameters()}
    module = EnsembleModule(score, ["good", "flat"], learn_weights=True, learning_rate=0.2)
    assert [p for p in module.parameters() if p.requires_grad] == [module.weight_logits]
    member = bits_per_byte_report(score(TEXTS)).member_bpb
    assert member[0] < member[1]
    start = _trainer().validate(module, text_dataloader(TEXTS), verbose=False)[0]
    _trainer(max_epochs=15).fit(module, text_dataloader(TEXTS))
    after = _trainer().validate(module, text_dataloader(TEXTS), verbose=False)[0]
    assert module.weights[0] > 0.6
    assert after["val/bpb_ensemble"] < start["val/bpb_ensemble"]
    assert all(torch.equal(p, before[name]) for name, p in good.named_parameters())
    with pytest.raises(ValueError, match="mean_prob"):
        EnsembleModule(score, ["a", "b"], combine="mean_logprob", learn_weights=True)
