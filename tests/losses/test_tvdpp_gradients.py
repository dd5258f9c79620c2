"""TVD++ gradients, exactly, against a reference written from the paper's policy-gradient form.

Goel et al. 2024 (arXiv 2403.00858): with reward ``r(x) = 1{p(x) > q(x)}`` (target ``p``, draft
``q``) the TVD gradient is ``-E_{x~q}[r(x) grad log q(x)]``; TVD++ replaces ``r`` by an advantage
``A = (r - mu) / sigma``. The reference below loops over positions and vocabulary entries, takes
``mu`` and ``sigma`` as each normalisation's docstring reads them (computed as a mean and a standard
deviation, not through the Bernoulli shortcut), and lets autograd differentiate the score-function
surrogate ``-sum_x stopgrad(q(x) A(x)) log q(x)``. Nothing here calls ctd's helpers.
"""

import math

import pytest
import torch

from ctd.losses import TVDPP_NORMALIZATIONS, tvdpp_loss, tvdpp_loss_from_hidden

EPS = 1e-6  # the losses' default; the reference divides by (sigma + EPS) as the docstring does


def reference_tvdpp(draft_logits, target_logits, mask, normalization, temperature):
    """Masked mean TVD and the TVD++ surrogate, by explicit loops over (position, token).

    Returns ``(tvd, surrogate)``: ``surrogate``'s autograd gradient is the TVD++ gradient.
    """
    batch, length, vocab = draft_logits.shape
    scored = [(b, t) for b in range(batch) for t in range(length) if mask[b, t]]
    logq = {bt: torch.log_softmax(draft_logits[bt] / temperature, -1) for bt in scored}
    q = {bt: logq[bt].detach().exp().tolist() for bt in scored}  # stopgrad(q), as floats
    p = {bt: torch.softmax(target_logits[bt].detach() / temperature, -1).tolist() for bt in scored}
    r = {bt: [float(p[bt][x] > q[bt][x]) for x in range(vocab)] for bt in scored}

    def weighted_mean_std(pairs):  # pairs: (weight, reward) with weights summing to 1
        mean = sum(w * v for w, v in pairs)
        return mean, math.sqrt(sum(w * (v - mean) ** 2 for w, v in pairs))

    if normalization == "batch":  # every scored (position, token) pair, q-weighted
        pooled = [(q[bt][x] / len(scored), r[bt][x]) for bt in scored for x in range(vocab)]
        batch_stats = weighted_mean_std(pooled)
    tvd_terms, surrogate_terms = [], []
    for bt in scored:
        if normalization == "none":
            advantage = r[bt]
        elif normalization in ("position", "batch"):
            if normalization == "position":  # q-weighted over this position's vocabulary
                mean, std = weighted_mean_std(list(zip(q[bt], r[bt], strict=True)))
            else:
                mean, std = batch_stats
            advantage = [(r[bt][x] - mean) / (std + EPS) for x in range(vocab)]
        else:  # "vocab_unweighted": uniform mean and (Bessel-corrected) std, mean over the vocab
            mean = sum(r[bt]) / vocab
            std = math.sqrt(sum((v - mean) ** 2 for v in r[bt]) / (vocab - 1))
            advantage = [(v - mean) / (std + EPS) for v in r[bt]]
        if normalization == "vocab_unweighted":
            term = -sum(advantage[x] * logq[bt][x] for x in range(vocab)) / vocab
        else:  # E_{x~q}[A(x) grad log q(x)] as a score-function surrogate
            term = -sum(q[bt][x] * advantage[x] * logq[bt][x] for x in range(vocab))
        surrogate_terms.append(term)
        tvd_terms.append(0.5 * sum(abs(p[bt][x] - q[bt][x]) for x in range(vocab)))
    if not scored:
        return 0.0, draft_logits.sum() * 0
    return sum(tvd_terms) / len(scored), sum(surrogate_terms) / len(scored)


def case(seed, shape=(2, 4, 9)):
    gen = torch.Generator().manual_seed(seed)
    draft = torch.randn(shape, generator=gen, dtype=torch.float64)
    target = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    mask = torch.rand(shape[:2], generator=gen) > 0.3
    mask[0, 0], mask[-1, -1] = True, False  # at least one scored and one unscored position
    return draft, target, mask


@pytest.mark.parametrize("normalization", TVDPP_NORMALIZATIONS)
@pytest.mark.parametrize("temperature", [1.0, 1.7])
def test_tvdpp_gradient_is_the_reference_policy_gradient(normalization, temperature):
    draft, target, mask = case(10)
    draft_ref = draft.clone().requires_grad_(True)
    want_value, surrogate = reference_tvdpp(draft_ref, target, mask, normalization, temperature)
    (want_grad,) = torch.autograd.grad(surrogate, draft_ref)

    draft_got = draft.clone().requires_grad_(True)
    got = tvdpp_loss(
        draft_got, target, mask=mask, normalization=normalization, temperature=temperature
    )
    (got_grad,) = torch.autograd.grad(got, draft_got)
    torch.testing.assert_close(got, torch.tensor(want_value, dtype=torch.float64))
    torch.testing.assert_close(got_grad, want_grad)
    assert got_grad[~mask].eq(0).all()  # unscored positions get no gradient
    assert got_grad[mask].abs().sum() > 0


def plain_head_case(seed, bias):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    weight = torch.randn(11, 3, generator=gen, dtype=torch.float64)
    head_bias = torch.randn(11, generator=gen, dtype=torch.float64) if bias else None
    target = torch.randn(2, 5, 11, generator=gen, dtype=torch.float64) * 2
    mask = torch.rand(2, 5, generator=gen) > 0.3
    mask[0, 0], mask[-1, -1] = True, False
    return hidden, weight, head_bias, target, mask


@pytest.mark.parametrize("normalization", TVDPP_NORMALIZATIONS)
@pytest.mark.parametrize(
    ("temperature", "chunk_size", "bias"), [(1.0, None, False), (1.7, 3, True)]
)
def test_tvdpp_from_hidden_gradient_is_the_reference(normalization, temperature, chunk_size, bias):
    hidden, weight, head_bias, target, mask = plain_head_case(11, bias)
    leaves = [hidden, weight] + ([head_bias] if bias else [])
    ref = [x.clone().requires_grad_(True) for x in leaves]
    logits = ref[0] @ ref[1].T + (ref[2] if bias else 0)  # a plain linear head
    want_value, surrogate = reference_tvdpp(logits, target, mask, normalization, temperature)
    want_grads = torch.autograd.grad(surrogate, ref)

    got_leaves = [x.clone().requires_grad_(True) for x in leaves]
    got = tvdpp_loss_from_hidden(
        got_leaves[0],
        got_leaves[1],
        target_logits=target,
        mask=mask,
        draft_lm_head_bias=got_leaves[2] if bias else None,
        normalization=normalization,
        temperature=temperature,
        chunk_size=chunk_size,
    )
    got_grads = torch.autograd.grad(got, got_leaves)
    torch.testing.assert_close(got, torch.tensor(want_value, dtype=torch.float64))
    for got_grad, want_grad in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(got_grad, want_grad)
    assert got_grads[0][~mask].eq(0).all()
