"""TVD++: exact policy-gradient identities, normalisation readings, chunked parity."""

import pytest
import torch
import torch.nn.functional as F

from ctd.losses import TVDPP_NORMALIZATIONS, tvdpp_loss, tvdpp_loss_from_hidden


def exact_tvd_grad(draft_logits, target_logits, mask):
    """Autograd gradient of the masked mean TVD, written with explicit softmaxes."""
    z = draft_logits.detach().clone().requires_grad_(True)
    p = F.softmax(target_logits, -1)
    per_position = 0.5 * (p - F.softmax(z, -1)).abs().sum(-1)
    (per_position[mask].sum() / mask.sum()).backward()
    return z.grad, per_position


def loss_and_grad(draft_logits, target_logits, mask, **kwargs):
    z = draft_logits.detach().clone().requires_grad_(True)
    loss = tvdpp_loss(z, target_logits, mask, **kwargs)
    loss.backward()
    return loss.detach(), z.grad


def case(seed=0, shape=(3, 5, 40)):
    gen = torch.Generator().manual_seed(seed)
    draft = torch.randn(shape, generator=gen, dtype=torch.float64)
    target = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    mask = torch.rand(shape[:2], generator=gen) > 0.3
    return draft, target, mask


def test_value_is_masked_mean_tvd():
    draft, target, mask = case()
    want = (0.5 * (F.softmax(target, -1) - F.softmax(draft, -1)).abs().sum(-1))[mask].mean()
    for mode in TVDPP_NORMALIZATIONS:
        torch.testing.assert_close(tvdpp_loss(draft, target, mask, normalization=mode), want)


def test_none_is_exactly_the_tvd_gradient():
    draft, target, mask = case()
    want, _ = exact_tvd_grad(draft, target, mask)
    _, got = loss_and_grad(draft, target, mask, normalization="none")
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-9)


def test_vocab_unweighted_is_the_third_party_form():
    draft, target, mask = case(3)
    z = draft.clone().requires_grad_(True)
    q = F.softmax(z, -1)
    with torch.no_grad():  # the third-party EAGLE-style code, quoted in the notes
        reward = ((F.softmax(target, -1) - q) > 0).double()
        reward = (reward - reward.mean(-1, keepdim=True)) / (reward.std(-1, keepdim=True) + 1e-6)
    per_position = (torch.log(q) * -reward).mean(-1)
    (per_position[mask].sum() / mask.sum()).backward()
    _, got = loss_and_grad(draft, target, mask, normalization="vocab_unweighted")
    torch.testing.assert_close(got, z.grad)


@pytest.mark.parametrize("mode", TVDPP_NORMALIZATIONS)
def test_zero_where_draft_equals_target(mode):
    draft, _, mask = case(4)
    loss, grad = loss_and_grad(draft, draft.clone(), mask, normalization=mode)
    assert loss.item() == 0.0
    assert grad.eq(0).all()


@pytest.mark.parametrize("mode", TVDPP_NORMALIZATIONS)
def test_all_masked_is_finite_zero(mode):
    draft, target, mask = case(5)
    loss, grad = loss_and_grad(draft, target, torch.zeros_like(mask), normalization=mode)
    assert loss.item() == 0.0
    assert torch.isfinite(grad).all()
    assert grad.eq(0).all()


@pytest.mark.parametrize("mode", TVDPP_NORMALIZATIONS)
@pytest.mark.parametrize("shape", [(3, 7, 11), (2, 9, 130)])
def test_from_hidden_matches_plain(mode, shape):
    gen = torch.Generator().manual_seed(6)
    hidden = torch.randn(*shape[:2], 5, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(shape[2], 5, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(shape[2], generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    mask = torch.rand(shape[:2], generator=gen) > 0.3
    kwargs = {"normalization": mode, "temperature": 1.7}
    got = tvdpp_loss_from_hidden(
        hidden, weight, target, mask, draft_lm_head_bias=bias, chunk_size=4, **kwargs
    )
    want = tvdpp_loss(hidden @ weight.T + bias, target, mask, **kwargs)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)
    got_grads = torch.autograd.grad(got, (hidden, weight, bias))
    want_grads = torch.autograd.grad(want, (hidden, weight, bias))
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("mode", ["position", "batch", "vocab_unweighted"])
@pytest.mark.parametrize("temperature", [1.0, 1.7])
def test_from_hidden_unmasked_matches_plain(mode, temperature):
    gen = torch.Generator().manual_seed(7)
    hidden = torch.randn(3, 7, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randn(3, 7, 11, generator=gen, dtype=torch.float64) * 2
    kwargs = {"normalization": mode, "temperature": temperature}
    got = tvdpp_loss_from_hidden(hidden, weight, target, chunk_size=5, **kwargs)
    want = tvdpp_loss(hidden @ weight.T, target, **kwargs)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)
    got_grads = torch.autograd.grad(got * 3, (hidden, weight))  # a non-unit incoming gradient
    want_grads = torch.autograd.grad(want * 3, (hidden, weight))
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-12, rtol=1e-9)
    target_before = target.clone()
    tvdpp_loss_from_hidden(hidden, weight, target, chunk_size=5, **kwargs)
    assert torch.equal(target, target_before)  # the chunked path never writes its input


def test_bad_input():
    draft, target, mask = case()
    with pytest.raises(ValueError, match=r"target_logits \(3, 5, 39\) and draft_logits"):
        tvdpp_loss(draft, target[..., :39])
    with pytest.raises(ValueError, match="unknown normalization 'vocab'"):
        tvdpp_loss(draft, target, normalization="vocab")
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 5\), got \(3, 4\)"):
        tvdpp_loss(draft, target, mask[:, :4])
    with pytest.raises(ValueError, match=r"draft_logits \(shape \(3, 5, 40\)\) contains NaN"):
        tvdpp_loss(draft * float("nan"), target)
