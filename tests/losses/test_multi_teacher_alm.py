"""Multi-teacher ALM against hand computations and the single-teacher `alm_loss`."""

from __future__ import annotations

import math

import pytest
import torch

from ctd.losses import alm_loss
from ctd.losses.multi_teacher_alm import (
    MultiTeacherALMLoss,
    ensemble_chunk_logprobs,
    multi_teacher_alm_loss,
    normalized_teacher_weights,
)

LN = math.log


def _bce(p_student: float, p_teacher: float, tau: float) -> float:
    """Binary cross-entropy of Bernoulli(p_T^(1/tau)) against Bernoulli(p_S^(1/tau)), by hand."""
    t, s = p_teacher ** (1 / tau), p_student ** (1 / tau)
    return -(t * math.log(s) + (1 - t) * math.log(1 - s))


def _case() -> dict[str, object]:
    """Two chunks; student 2 tokens + an unscored first one, teachers tile them differently.

    Text "abcd": chunk 0 = "ab", chunk 1 = "cd". Student tokens: [BOS-like unscored, ab, cd].
    Teacher A: [unscored, a, b, cd]; teacher B: [unscored, ab, c, d].
    """
    student = torch.tensor([[0.0, LN(0.5), LN(0.4)]], dtype=torch.float64)
    teacher_a = torch.tensor([[0.0, LN(0.5), LN(0.8), LN(0.9)]], dtype=torch.float64)
    teacher_b = torch.tensor([[0.0, LN(0.2), LN(0.5), LN(0.5)]], dtype=torch.float64)
    return {
        "student": student,
        "teachers": [teacher_a, teacher_b],
        "student_index": torch.tensor([[-1, 0, 1]]),
        "teacher_index": [torch.tensor([[-1, 0, 0, 1]]), torch.tensor([[-1, 0, 1, 1]])],
    }


def _space_logprobs() -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Space log-probs of `_case`'s student and of teachers A and B, per token."""
    student_space = torch.tensor([[0.0, LN(0.6), LN(0.7)]], dtype=torch.float64)
    space_a = torch.tensor([[0.0, LN(0.1), LN(0.3), LN(0.5)]], dtype=torch.float64)
    space_b = torch.tensor([[0.0, LN(0.9), LN(0.1), LN(0.2)]], dtype=torch.float64)
    return student_space, [space_a, space_b]


def test_ensemble_teacher_chunk_loglikelihood_by_hand() -> None:
    # teacher A: p(ab) = 0.5 * 0.8 = 0.4, p(cd) = 0.9; teacher B: p(ab) = 0.2, p(cd) = 0.25
    chunks = torch.tensor([[[LN(0.4), LN(0.9)]], [[LN(0.2), LN(0.25)]]], dtype=torch.float64)
    weights = torch.tensor([0.75, 0.25], dtype=torch.float64)
    mixed = ensemble_chunk_logprobs(chunks, weights)
    expected = [LN(0.75 * 0.4 + 0.25 * 0.2), LN(0.75 * 0.9 + 0.25 * 0.25)]
    assert mixed[0].tolist() == pytest.approx(expected, abs=1e-12)
    only_first = ensemble_chunk_logprobs(chunks, torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert only_first[0].tolist() == pytest.approx(chunks[0, 0].tolist(), abs=1e-12)


def test_ensemble_loss_by_hand() -> None:
    case = _case()
    tau = 2.0
    loss = multi_teacher_alm_loss(
        case["student"],
        case["teachers"],
        student_chunk_index=case["student_index"],
        teacher_chunk_index=case["teacher_index"],
        teacher_weights=[3.0, 1.0],  # normalised to 0.75 / 0.25
        combine="ensemble",
        temperature=tau,
        epsilon=0.0,
    )
    teacher_ab = 0.75 * 0.4 + 0.25 * 0.2
    teacher_cd = 0.75 * 0.9 + 0.25 * 0.25
    expected = (_bce(0.5, teacher_ab, tau) + _bce(0.4, teacher_cd, tau)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_ensemble_with_append_space_mixes_chunk_then_space() -> None:
    case = _case()
    student_space, (space_a, space_b) = _space_logprobs()
    loss = multi_teacher_alm_loss(
        case["student"],
        case["teachers"],
        student_chunk_index=case["student_index"],
        teacher_chunk_index=case["teacher_index"],
        combine="ensemble",
        temperature=1.0,
        epsilon=0.0,
        append_space=True,
        student_space_logprobs=student_space,
        teacher_space_logprobs=[space_a, space_b],
    )
    # space log-prob at each chunk's last token: A (ab -> b: 0.3, cd: 0.5), B (ab: 0.9, d: 0.2)
    teacher_ab = 0.5 * (0.4 * 0.3) + 0.5 * (0.2 * 0.9)
    teacher_cd = 0.5 * (0.9 * 0.5) + 0.5 * (0.25 * 0.2)
    expected = (_bce(0.5 * 0.6, teacher_ab, 1.0) + _bce(0.4 * 0.7, teacher_cd, 1.0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def _single_teacher_losses(
    case: dict[str, object], per_teacher: list[dict[str, object]], **options: object
) -> list[float]:
    """`alm_loss` of the student against each teacher alone (`per_teacher[k]`: its own kwargs)."""
    return [
        alm_loss(
            case["student"],
            teacher,
            student_chunk_index=case["student_index"],
            teacher_chunk_index=index,
            **own,
            **options,
        ).item()
        for teacher, index, own in zip(
            case["teachers"], case["teacher_index"], per_teacher, strict=True
        )
    ]


def test_sum_equals_the_weighted_single_teacher_losses() -> None:
    case = _case()
    masks = [torch.tensor([[True, True, True, False]]), None]  # teacher A's "cd" unscored
    singles = _single_teacher_losses(
        case, [{"teacher_mask": mask} for mask in masks], temperature=3.0
    )
    module = MultiTeacherALMLoss(combine="sum", teacher_weights=[1.0, 4.0], temperature=3.0)
    loss = module(
        case["student"],
        case["teachers"],
        student_chunk_index=case["student_index"],
        teacher_chunk_index=case["teacher_index"],
        teacher_mask=masks,
    )
    assert loss.item() == pytest.approx(0.2 * singles[0] + 0.8 * singles[1])


def test_sum_passes_the_merge_options_to_every_single_teacher_loss() -> None:
    case = _case()
    student_space, spaces = _space_logprobs()
    # threshold 0.4 merges teacher A's two chunks (space 0.3 after "ab"); the default 0.1 does not
    options = {"merge_by_space_prob": True, "space_prob_threshold": 0.4, "temperature": 1.0}
    own = [{"teacher_space_logprobs": space} for space in spaces]
    singles = _single_teacher_losses(case, own, student_space_logprobs=student_space, **options)
    default_threshold = _single_teacher_losses(
        case, own, student_space_logprobs=student_space, merge_by_space_prob=True, temperature=1.0
    )
    assert default_threshold[0] != pytest.approx(singles[0])  # the option matters
    loss = multi_teacher_alm_loss(
        case["student"],
        case["teachers"],
        student_chunk_index=case["student_index"],
        teacher_chunk_index=case["teacher_index"],
        combine="sum",
        student_space_logprobs=student_space,
        teacher_space_logprobs=spaces,
        teacher_weights=[1.0, 3.0],
        **options,
    )
    assert loss.item() == pytest.approx(0.25 * singles[0] + 0.75 * singles[1])


def test_identical_teachers_equal_single_teacher_alm_and_gradients_flow() -> None:
    case = _case()
    student = case["student"].clone().requires_grad_(True)
    teacher = case["teachers"][0]
    single = alm_loss(
        student,
        teacher,
        student_chunk_index=case["student_index"],
        teacher_chunk_index=case["teacher_index"][0],
    )
    for combine in ("ensemble", "sum"):
        both = multi_teacher_alm_loss(
            student,
            [teacher, teacher],
            student_chunk_index=case["student_index"],
            teacher_chunk_index=[case["teacher_index"][0]] * 2,
            teacher_weights=[0.3, 0.7],
            combine=combine,
        )
        assert both.item() == pytest.approx(single.item(), rel=1e-10)
    (gradient,) = torch.autograd.grad(both, student)
    assert torch.isfinite(gradient).all()
    assert gradient[0, 1:].abs().sum() > 0


def test_a_chunk_invalid_on_one_teacher_drops_out_of_the_ensemble() -> None:
    case = _case()
    tau = 1.0
    loss = multi_teacher_alm_loss(
        case["student"],
        case["teachers"],
        student_chunk_index=case["student_index"],
        teacher_chunk_index=case["teacher_index"],
        teacher_mask=[None, torch.tensor([[True, True, True, False]])],  # B's "cd" unscored
        temperature=tau,
        epsilon=0.0,
    )
    assert loss.item() == pytest.approx(_bce(0.5, 0.5 * 0.4 + 0.5 * 0.2, tau), rel=1e-10)


def test_bad_input() -> None:
    case = _case()
    arguments = {
        "student_chunk_index": case["student_index"],
        "teacher_chunk_index": case["teacher_index"],
    }
    with pytest.raises(ValueError, match="combine must be one of ensemble, sum"):
        multi_teacher_alm_loss(case["student"], case["teachers"], combine="mean", **arguments)
    with pytest.raises(ValueError, match=">= 0"):
        multi_teacher_alm_loss(
            case["student"], case["teachers"], teacher_weights=[1, -1], **arguments
        )
    with pytest.raises(ValueError, match="sum to a positive number"):
        normalized_teacher_weights([0.0, 0.0], 2)
    with pytest.raises(ValueError, match="2 entries for 3 teachers"):
        normalized_teacher_weights([1.0, 1.0], 3)
    with pytest.raises(ValueError, match="merge_by_space_prob is not defined"):
        MultiTeacherALMLoss(combine="ensemble", merge_by_space_prob=True)
    with pytest.raises(ValueError, match="teacher_mask has 1 entries for 2 teachers"):
        multi_teacher_alm_loss(case["student"], case["teachers"], teacher_mask=[None], **arguments)
    with pytest.raises(ValueError, match="teacher_chunk_index has 1 entries for 2 teachers"):
        multi_teacher_alm_loss(
            case["student"],
            case["teachers"],
            student_chunk_index=case["student_index"],
            teacher_chunk_index=case["teacher_index"][:1],
        )
    with pytest.raises(ValueError, match="append_space needs .* every teacher"):
        multi_teacher_alm_loss(
            case["student"],
            case["teachers"],
            append_space=True,
            student_space_logprobs=case["student"],
            teacher_space_logprobs=[case["teachers"][0], None],
            **arguments,
        )
    assert normalized_teacher_weights([], 4) == [0.25] * 4
