"""The loss-wiring contract of task `distill`: every entry runs on exactly what it declares.

Each entry of `DISTILL_WIRINGS` is called on forward passes that computed only its declared
needs (and, when it declares no chunk use, on a batch whose chunk alignment is removed), so an
incomplete declaration fails here. Three entries are also checked against independent references
computed from plain Hugging Face logits.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from ctd.alignment import CrossTokenizerCollator
from ctd.losses import LOSSES, alm_loss
from ctd.trainers._common import causal_lm_forward
from ctd.trainers.distill_wiring import DISTILL_WIRINGS
from ctd.trainers.vocab import SideVocab
from ctd.trainers.wiring import Need, SideOutputs, build_loss_modules

SAME_VOCABULARY = {"kl", "reverse_kl", "jsd", "tvd"}
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Café au lait 🙂 and 12345."]


def _load(path: Path) -> tuple[Any, Any]:
    return AutoModelForCausalLM.from_pretrained(path).float(), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def pair(tiny_models: dict[str, Path]) -> dict[str, Any]:
    teacher, teacher_tokenizer = _load(tiny_models["teacher"])
    student, student_tokenizer = _load(tiny_models["student"])
    shared_student = copy.deepcopy(teacher)  # same tokenizer, different weights
    with torch.no_grad():
        for parameter in shared_student.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return {
        "teacher": (teacher, teacher_tokenizer),
        "student": (student, student_tokenizer),
        "shared_student": (shared_student, teacher_tokenizer),
    }


def _batch(teacher_tokenizer: Any, student_tokenizer: Any) -> Any:
    collator = CrossTokenizerCollator(
        teacher_tokenizer, student_tokenizer, max_teacher_length=64, max_student_length=64
    )
    return collator(list[Any](TEXTS))


def _side(model: Any, tokenizer: Any, ids: Any, mask: Any, needs: frozenset[Need]) -> SideOutputs:
    vocab = SideVocab.from_tokenizer(tokenizer, model.get_input_embeddings().weight.shape[0])
    return causal_lm_forward(
        model,
        ids,
        mask,
        needs,
        space_token_mask=vocab.space_token_mask,
        eos_token_id=vocab.eos_token_id,
    )


def _setup_values(student: Any, teacher: Any) -> dict[str, Any]:
    rows = student.get_input_embeddings().weight.shape[0]
    return {
        "student_dim": student.config.hidden_size,
        "teacher_dim": teacher.config.hidden_size,
        "student_to_teacher": torch.arange(rows) % teacher.config.vocab_size,
    }


def _run_entry(name: str, pair: dict[str, Any], **loss_kwargs: Any) -> tuple[Any, Any, Any]:
    """(value, student model, batch) of entry `name` on declared-only forward passes."""
    teacher, teacher_tokenizer = pair["teacher"]
    student, student_tokenizer = pair["shared_student" if name in SAME_VOCABULARY else "student"]
    wiring = DISTILL_WIRINGS[name]
    batch = _batch(teacher_tokenizer, student_tokenizer)
    if not wiring.uses_chunks:
        batch = dataclasses.replace(
            batch, teacher_chunk_index=None, student_chunk_index=None, chunk_num_bytes=None
        )
    student.zero_grad()
    with torch.no_grad():
        teacher_outputs = _side(
            teacher,
            teacher_tokenizer,
            batch.teacher_input_ids,
            batch.teacher_attention_mask,
            wiring.teacher_needs,
        )
    student_outputs = _side(
        student,
        student_tokenizer,
        batch.student_input_ids,
        batch.student_attention_mask,
        wiring.student_needs,
    )
    (loss,) = build_loss_modules(
        [(name, loss_kwargs)], DISTILL_WIRINGS, _setup_values(student, teacher)
    ).values()
    value = wiring.call(loss, batch, teacher_outputs, student_outputs)
    return value, student, batch


def test_every_registered_loss_is_wired_except_the_drafters() -> None:
    assert set(DISTILL_WIRINGS) == set(LOSSES) - {"tvdpp"}


@pytest.mark.parametrize("name", sorted(DISTILL_WIRINGS))
def test_entry_runs_on_exactly_its_declared_needs(name: str, pair: dict[str, Any]) -> None:
    value, student, _ = _run_entry(name, pair)
    assert value.ndim == 0
    assert torch.isfinite(value)
    value.backward()
    gradients = [p.grad for p in student.parameters() if p.grad is not None]
    assert gradients, f"{name}: no gradient reaches the student"
    assert any(bool(g.abs().sum() > 0) for g in gradients)


def test_an_undeclared_read_names_the_missing_need() -> None:
    side = SideOutputs(torch.zeros(1, 3, dtype=torch.long), {})
    with pytest.raises(KeyError, match="Need.LOGITS"):
        side[Need.LOGITS]


def _hf_token_logprobs(model: Any, ids: Any, mask: Any) -> Any:
    """log p(x_t | x_<t) from the full logits, position 0 = 0: an independent reference."""
    logits = model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
    logprobs = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    picked = logprobs.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return torch.cat([torch.zeros_like(picked[:, :1]), picked], dim=1)


def test_sft_entry_is_the_mean_nll_of_the_scored_student_tokens(pair: dict[str, Any]) -> None:
    value, student, batch = _run_entry("sft", pair)
    logprobs = _hf_token_logprobs(
        student, batch.student_input_ids, batch.student_attention_mask
    ).detach()
    scored = batch.student_loss_mask.clone()
    scored[:, 0] = False
    expected = -(logprobs * scored).sum() / scored.sum()
    torch.testing.assert_close(value.double(), expected, rtol=1e-4, atol=1e-5)


def test_kl_entry_is_the_teacher_to_student_kl_of_the_next_token(pair: dict[str, Any]) -> None:
    value, student, batch = _run_entry("kl", pair)
    teacher = pair["teacher"][0]
    ids, mask = batch.student_input_ids, batch.student_attention_mask
    with torch.no_grad():
        teacher_logp = torch.log_softmax(teacher(input_ids=ids, attention_mask=mask).logits, -1)
        student_logp = torch.log_softmax(student(input_ids=ids, attention_mask=mask).logits, -1)
    # logits at t predict token t + 1: position t counts when token t + 1 is scored.
    counted = torch.zeros_like(batch.student_loss_mask)
    counted[:, :-1] = batch.student_loss_mask[:, 1:]
    per_position = F.kl_div(student_logp, teacher_logp, log_target=True, reduction="none").sum(-1)
    expected = (per_position * counted).sum() / counted.sum()
    torch.testing.assert_close(value.detach(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("eos_as_space", [False, True])
def test_alm_entry_routes_each_side_and_its_space_or_eos_probabilities(
    pair: dict[str, Any], eos_as_space: bool
) -> None:
    value, student, batch = _run_entry("alm", pair, eos_as_space=eos_as_space, append_space=True)
    teacher, teacher_tokenizer = pair["teacher"]
    student_tokenizer = pair["student"][1]

    def next_token_logprob(model: Any, tokenizer: Any, ids: Any, mask: Any) -> Any:
        logits = model(input_ids=ids, attention_mask=mask).logits.double()  # (B, T, V)
        logprobs = torch.log_softmax(logits, dim=-1)
        if eos_as_space:
            return logprobs[..., tokenizer.eos_token_id]
        rows = model.get_input_embeddings().weight.shape[0]
        space = SideVocab.from_tokenizer(tokenizer, rows).space_token_mask
        return torch.logsumexp(logprobs[..., space], dim=-1)

    with torch.no_grad():
        sides = {
            "teacher": (teacher, teacher_tokenizer, batch.teacher_input_ids),
            "student": (student, student_tokenizer, batch.student_input_ids),
        }
        reference = {}
        for side, (model, tokenizer, ids) in sides.items():
            mask = getattr(batch, f"{side}_attention_mask")
            reference[side] = (
                _hf_token_logprobs(model, ids, mask),
                next_token_logprob(model, tokenizer, ids, mask),
            )
    expected = alm_loss(
        student_logprobs=reference["student"][0],
        teacher_logprobs=reference["teacher"][0],
        student_chunk_index=batch.student_chunk_index,
        teacher_chunk_index=batch.teacher_chunk_index,
        student_space_logprobs=reference["student"][1],
        teacher_space_logprobs=reference["teacher"][1],
        student_mask=batch.student_loss_mask,
        teacher_mask=batch.teacher_loss_mask,
        num_chunks=batch.chunk_num_bytes.shape[1],
        append_space=True,
    )
    torch.testing.assert_close(value.detach().double(), expected, rtol=1e-4, atol=1e-6)


def test_eos_as_space_changes_what_alm_reads(pair: dict[str, Any]) -> None:
    with_space, _, _ = _run_entry("alm", pair, eos_as_space=False, append_space=True)
    with_eos, _, _ = _run_entry("alm", pair, eos_as_space=True, append_space=True)
    assert not torch.isclose(with_space, with_eos)


def test_a_side_without_an_eos_token_still_serves_alm(pair: dict[str, Any]) -> None:
    teacher, tokenizer = pair["teacher"]
    batch = _batch(tokenizer, tokenizer)
    ids, mask = batch.teacher_input_ids, batch.teacher_attention_mask
    space_mask = torch.zeros(teacher.config.vocab_size, dtype=torch.bool)
    with torch.no_grad():
        side = causal_lm_forward(
            teacher,
            ids,
            mask,
            DISTILL_WIRINGS["alm"].student_needs,
            space_token_mask=space_mask,
            eos_token_id=None,
        )
    assert side[Need.TOKEN_LOGPROBS].shape == ids.shape
    assert side[Need.SPACE_LOGPROBS].shape == ids.shape
    with pytest.raises(KeyError, match="EOS_LOGPROBS"):
        side[Need.EOS_LOGPROBS]
