"""Shared-vocabulary baselines and SFT against torch.nn.functional references."""

import pytest
import torch
import torch.nn.functional as F

from ctd.losses import (
    LOSSES,
    forward_kl_loss,
    generalized_jsd_loss,
    reverse_kl_loss,
    sft_loss,
    token_logprobs,
    tvd_loss,
)


def case(seed=0, shape=(3, 7, 11)):
    gen = torch.Generator().manual_seed(seed)
    student = torch.randn(shape, generator=gen, dtype=torch.float64)
    teacher = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    mask = torch.rand(shape[:2], generator=gen) > 0.3
    return student, teacher, mask


def kl_div_reference(p_logits, q_logits, mask, temperature=1.0):
    """KL(p || q) per position with F.kl_div, masked mean."""
    p = F.log_softmax(p_logits / temperature, -1)
    q = F.log_softmax(q_logits / temperature, -1)
    per_position = F.kl_div(q, p, reduction="none", log_target=True).sum(-1)
    return per_position[mask].mean()


def test_forward_and_reverse_kl_match_kl_div():
    student, teacher, mask = case()
    torch.testing.assert_close(
        forward_kl_loss(student, teacher, mask), kl_div_reference(teacher, student, mask)
    )
    torch.testing.assert_close(
        reverse_kl_loss(student, teacher, mask, temperature=2.0),
        kl_div_reference(student, teacher, mask, temperature=2.0),
    )


def test_jsd_limits_and_midpoint():
    student, teacher, mask = case(1)
    torch.testing.assert_close(
        generalized_jsd_loss(student, teacher, mask, beta=0.0),
        kl_div_reference(teacher, student, mask),
    )
    torch.testing.assert_close(
        generalized_jsd_loss(student, teacher, mask, beta=1.0),
        kl_div_reference(student, teacher, mask),
    )
    p, q = F.softmax(teacher, -1), F.softmax(student, -1)
    m = 0.5 * (p + q)
    kl = lambda a, b: F.kl_div(b.log(), a, reduction="none").sum(-1)  # noqa: E731
    want = (0.5 * kl(p, m) + 0.5 * kl(q, m))[mask].mean()
    torch.testing.assert_close(generalized_jsd_loss(student, teacher, mask, beta=0.5), want)


def test_tvd_matches_l1():
    student, teacher, mask = case(2)
    want = (
        F.l1_loss(F.softmax(student, -1), F.softmax(teacher, -1), reduction="none").sum(-1) / 2
    )[mask].mean()
    torch.testing.assert_close(tvd_loss(student, teacher, mask), want)


@pytest.mark.parametrize("fn", [forward_kl_loss, reverse_kl_loss, generalized_jsd_loss, tvd_loss])
def test_identity_zero_gradcheck_and_all_masked(fn):
    student, teacher, mask = case(3, shape=(2, 3, 5))
    assert fn(student, student.clone(), mask).abs().item() < 1e-12
    leaf = student.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: fn(s, teacher, mask), (leaf,))
    loss = fn(leaf, teacher, torch.zeros_like(mask))
    (grad,) = torch.autograd.grad(loss, leaf)
    assert loss.item() == 0.0
    assert grad.eq(0).all()


def test_sft_matches_cross_entropy():
    logits, _, _ = case(4)
    ids = torch.randint(0, 11, (3, 7), generator=torch.Generator().manual_seed(0))
    want = F.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(sft_loss(token_logprobs(logits, ids)), want)
    assert sft_loss(token_logprobs(logits, ids), torch.zeros(3, 7, dtype=torch.bool)).item() == 0.0


def test_registry_names_and_modules():
    expected = {
        "alm",
        "alm_latents",
        "sft",
        "kl",
        "reverse_kl",
        "jsd",
        "tvd",
        "uld",
        "dskd",
        "mined",
        "tvdpp",
    }
    assert expected <= set(LOSSES)
    for cls in LOSSES.values():
        assert issubclass(cls, torch.nn.Module)


def test_bad_input():
    student, teacher, mask = case()
    with pytest.raises(ValueError, match=r"teacher_logits \(3, 7, 10\) and student_logits"):
        forward_kl_loss(student, teacher[..., :10])
    with pytest.raises(ValueError, match="beta must be in"):
        generalized_jsd_loss(student, teacher, beta=1.5)
