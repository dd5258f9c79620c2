"""Batched OMP against a planted solution and a one-token-at-a-time numpy OMP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_support import numpy_omp

from ctd.models.omp import orthogonal_matching_pursuit


def test_recovers_planted_sparse_combination() -> None:
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(200, 64))
    supports = [rng.choice(200, size=5, replace=False) for _ in range(10)]
    weights = [rng.uniform(1.0, 3.0, size=5) * rng.choice([-1, 1], size=5) for _ in range(10)]
    targets = np.stack([w @ atoms[s] for s, w in zip(supports, weights, strict=True)])
    code = orthogonal_matching_pursuit(torch.tensor(targets), torch.tensor(atoms), 5)[5]
    for row, (support, weight) in enumerate(zip(supports, weights, strict=True)):
        found = dict(zip(code.indices[row].tolist(), code.coefficients[row].tolist(), strict=True))
        assert sorted(found) == sorted(support.tolist())
        np.testing.assert_allclose([found[i] for i in support], weight, rtol=1e-9)
    assert float(code.residual_norms.max()) < 1e-9


def test_residual_never_grows_with_k() -> None:
    rng = np.random.default_rng(1)
    atoms, targets = rng.normal(size=(120, 24)), rng.normal(size=(9, 24))
    codes = orthogonal_matching_pursuit(torch.tensor(targets), torch.tensor(atoms), range(1, 25))
    norms = []
    for k in range(1, 25):
        fit = np.einsum("nk,nkd->nd", codes[k].coefficients, atoms[codes[k].indices.numpy()])
        norms.append(np.linalg.norm(targets - fit, axis=1))  # from the codes, not the field
        np.testing.assert_allclose(norms[-1], codes[k].residual_norms, atol=1e-9)
    assert (np.diff(np.stack(norms), axis=0) <= 1e-12).all()
    assert norms[-1].max() < 1e-9  # 24 independent atoms span the 24-d space


@pytest.mark.parametrize("candidates", [None, 40])
def test_batched_equals_numpy_one_token_at_a_time(candidates: int | None) -> None:
    rng = np.random.default_rng(2)
    atoms, targets = (
        rng.normal(size=(150, 20)) * rng.uniform(0.5, 2, (150, 1)),
        rng.normal(size=(13, 20)),
    )
    code = orthogonal_matching_pursuit(
        torch.tensor(targets), torch.tensor(atoms), 7, candidates=candidates, batch_size=4
    )[7]
    unit = atoms / np.linalg.norm(atoms, axis=1, keepdims=True)
    for row, target in enumerate(targets):
        pool = np.arange(150)
        if candidates is not None:
            pool = np.argsort(-np.abs(unit @ target), kind="stable")[:candidates]
        support, coefficients = numpy_omp(target, atoms[pool], 7)
        assert code.indices[row].tolist() == pool[support].tolist()
        np.testing.assert_allclose(code.coefficients[row].numpy(), coefficients, rtol=1e-8)


def test_float32_matches_float64_on_the_same_picks() -> None:
    rng = np.random.default_rng(3)
    atoms, targets = rng.normal(size=(300, 32)), rng.normal(size=(20, 32))
    exact = orthogonal_matching_pursuit(torch.tensor(targets), torch.tensor(atoms), 16)[16]
    single = orthogonal_matching_pursuit(
        torch.tensor(targets).float(), torch.tensor(atoms).float(), 16
    )[16]
    assert single.coefficients.dtype == torch.float32
    assert (single.indices == exact.indices).float().mean() > 0.95


def test_duplicate_atom_gets_no_weight() -> None:
    atoms = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    code = orthogonal_matching_pursuit(
        torch.tensor([[3.0, 0.0, 0.0]], dtype=torch.float64), atoms, 3
    )[3]
    fit = code.coefficients[0] @ atoms[code.indices[0]]
    torch.testing.assert_close(fit, torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64))
    assert torch.isfinite(code.coefficients).all()


@pytest.mark.parametrize(
    ("k", "candidates", "message"),
    [(0, None, "at least 1"), (6, None, "larger than the number of atoms"), (3, 2, "candidates")],
)
def test_bad_requests(k: int, candidates: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        orthogonal_matching_pursuit(torch.zeros(2, 3), torch.ones(5, 3), k, candidates=candidates)


def test_width_mismatch() -> None:
    with pytest.raises(ValueError, match="width"):
        orthogonal_matching_pursuit(torch.zeros(2, 3), torch.ones(5, 4), 1)


def test_nearly_collinear_atom_is_not_used() -> None:
    # atom 0 is atom 1 tilted by 1%. Textbook OMP picks atom 1, then atom 0, and fits the target
    # exactly with coefficients (-29, 30): right in this space, huge anywhere else. With the guard
    # atom 0 adds too little that is new (1% of its norm): the fit stays on atom 1's line.
    atoms = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.01, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([[1.0, 0.3, 0.0]], dtype=torch.float64)
    textbook = orthogonal_matching_pursuit(target, atoms, 2, min_new_share=0.0)[2]
    guarded = orthogonal_matching_pursuit(target, atoms, 2)[2]
    assert textbook.indices[0].tolist() == [1, 0]
    assert textbook.coefficients.abs().max() > 25
    assert textbook.residual_norms.max() < 1e-12
    line = atoms[1] / atoms[1].norm()
    on_line = float(target[0] @ line) * line  # projection by hand
    fit = guarded.coefficients[0] @ atoms[guarded.indices[0]]
    torch.testing.assert_close(fit, on_line)
    torch.testing.assert_close(guarded.residual_norms[0], (target[0] - on_line).norm())
