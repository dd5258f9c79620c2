"""Batched Orthogonal Matching Pursuit: each target row as a sparse combination of atoms.

OMP (Pati et al., 1993) picks, `k` times, the atom most correlated with the current residual
(atoms compared after scaling to unit norm), then refits all picked atoms by least squares. Here
every target of a batch runs at once: the residual is kept orthogonal to the picked atoms by
Gram-Schmidt (re-orthogonalised once), so each step costs one correlation and one projection,
and the coefficients come from one triangular solve at the end (for every requested sparsity:
the first `s` picks of a `k`-atom run are the picks of an `s`-atom run, OMP being greedy).

`candidates` screens the dictionary: each target searches only the `candidates` atoms most
correlated with the target itself (one matrix product per batch). With `candidates=None` (or at
least the number of atoms) the search is over every atom: exact OMP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

_DEGENERATE = 1e-6
"""An atom whose part orthogonal to the picked ones is below this share of its norm adds
nothing (it is in their span): it keeps coefficient 0."""


@dataclass(frozen=True)
class OMPResult:
    """The sparse codes of a batch of targets.

    Shapes: indices (N, k) long, atom ids in the order picked; coefficients (N, k);
    residual_norms (N,): `||target - coefficients @ dictionary[indices]||`.
    """

    indices: Tensor
    coefficients: Tensor
    residual_norms: Tensor


def _check(targets: Tensor, dictionary: Tensor, ks: Sequence[int], candidates: int | None) -> None:
    if targets.ndim != 2 or dictionary.ndim != 2:
        raise ValueError(
            f"OMP needs 2-d targets and dictionary, got {tuple(targets.shape)} and "
            f"{tuple(dictionary.shape)}"
        )
    if targets.shape[1] != dictionary.shape[1]:
        raise ValueError(
            f"targets have width {targets.shape[1]} but the dictionary's atoms have width "
            f"{dictionary.shape[1]}"
        )
    k = max(ks)
    if min(ks) < 1:
        raise ValueError(f"k must be at least 1, got {min(ks)}")
    if k > dictionary.shape[0]:
        raise ValueError(f"k={k} is larger than the number of atoms ({dictionary.shape[0]})")
    if candidates is not None and candidates < k:
        raise ValueError(f"candidates={candidates} must be at least k={k}")


def _picks(
    targets: Tensor, atoms: Tensor, unit_atoms: Tensor, k: int, pool: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Greedy picks of one batch: (atom ids (B, k), R (B, k, k), z (B, k)).

    `pool` (B, M) restricts each target's search to those atom ids (None: every atom).
    """
    batch, width = targets.shape
    searched = unit_atoms if pool is None else unit_atoms[pool]  # (A, d) or (B, M, d)
    residual = targets.clone()
    basis = targets.new_zeros(batch, k, width)  # orthonormal rows (B, k, d)
    upper = targets.new_zeros(batch, k, k)  # picked atoms (as rows) = upper.T @ basis
    z = targets.new_zeros(batch, k)  # basis @ target
    picked = torch.empty(batch, k, dtype=torch.long, device=targets.device)
    rows = torch.arange(batch, device=targets.device)
    taken = torch.zeros(batch, searched.shape[-2], dtype=torch.bool, device=targets.device)
    for step in range(k):
        if pool is None:
            correlation = (residual @ searched.T).abs()  # (B, A)
        else:
            correlation = torch.bmm(searched, residual.unsqueeze(2)).squeeze(2).abs()  # (B, M)
        correlation.masked_fill_(taken, -1.0)
        choice = correlation.argmax(dim=1)  # (B,)
        taken[rows, choice] = True
        atom_ids = choice if pool is None else pool[rows, choice]
        picked[:, step] = atom_ids
        atom = atoms[atom_ids]  # (B, d)
        done = basis[:, :step]  # (B, s, d)
        projection = torch.bmm(done, atom.unsqueeze(2)).squeeze(2)  # (B, s)
        orthogonal = atom - torch.bmm(projection.unsqueeze(1), done).squeeze(1)  # (B, d)
        again = torch.bmm(done, orthogonal.unsqueeze(2)).squeeze(2)  # re-orthogonalise once
        orthogonal -= torch.bmm(again.unsqueeze(1), done).squeeze(1)
        projection += again
        norm = orthogonal.norm(dim=1)  # (B,)
        degenerate = norm <= _DEGENERATE * atom.norm(dim=1)
        safe_norm = torch.where(degenerate, torch.ones_like(norm), norm)
        direction = orthogonal / safe_norm.unsqueeze(1)
        direction[degenerate] = 0.0
        upper[:, :step, step] = projection.masked_fill(degenerate.unsqueeze(1), 0.0)
        upper[:, step, step] = safe_norm
        basis[:, step] = direction
        z[:, step] = (direction * residual).sum(dim=1)
        residual -= direction * z[:, step : step + 1]
    return picked, upper, z


def orthogonal_matching_pursuit(
    targets: Tensor,
    dictionary: Tensor,
    k: int | Sequence[int],
    *,
    candidates: int | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[int, OMPResult]:
    """Sparse codes of every target row over the dictionary's rows (atoms), by batched OMP.

    Shapes: targets (N, d), dictionary (A, d); each result (N, s) for s in `k`.

    Args:
        targets: The rows to approximate.
        dictionary: The atoms (any norms; atoms are compared after scaling to unit norm).
        k: The number of atoms per target, or several (one run up to the largest).
        candidates: Search only each target's this many most correlated atoms (None: all).
        batch_size: Targets per batch (memory: batch_size x min(candidates, A) x d floats).
        progress: Show a progress bar over the batches.

    Returns:
        Sparsity -> codes, computed in float32 (float64 inputs stay float64).

    Raises:
        ValueError: Mismatched widths, k < 1, k above the atom count or above `candidates`.

    Example:
        >>> atoms = torch.eye(3, dtype=torch.float64)
        >>> code = orthogonal_matching_pursuit(torch.tensor([[0.0, 2.0, -1.0]]), atoms, 2)[2]
        >>> code.indices.tolist(), code.coefficients.tolist()
        ([[1, 2]], [[2.0, -1.0]])
    """
    ks = sorted({k} if isinstance(k, int) else set(k))
    _check(targets, dictionary, ks, candidates)
    dtype = torch.float64 if torch.float64 in (targets.dtype, dictionary.dtype) else torch.float32
    atoms = dictionary.detach().to(dtype)
    unit_atoms = atoms / atoms.norm(dim=1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    screened = candidates is not None and candidates < atoms.shape[0]
    parts: dict[int, list[tuple[Tensor, Tensor, Tensor]]] = {s: [] for s in ks}
    starts = range(0, targets.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="OMP", unit="batch")
    with torch.no_grad():
        for start in starts:
            batch = targets[start : start + batch_size].detach().to(dtype)
            pool = None
            if candidates is not None and screened:
                scores = (batch @ unit_atoms.T).abs()  # (B, A)
                pool = scores.topk(candidates, dim=1).indices  # (B, M)
            picked, upper, z = _picks(batch, atoms, unit_atoms, ks[-1], pool)
            for s in ks:
                solved = torch.linalg.solve_triangular(
                    upper[:, :s, :s], z[:, :s].unsqueeze(2), upper=True
                ).squeeze(2)  # (B, s)
                fit = torch.bmm(solved.unsqueeze(1), atoms[picked[:, :s]]).squeeze(1)  # (B, d)
                parts[s].append((picked[:, :s], solved, (batch - fit).norm(dim=1)))
    empty = (
        torch.empty(0, ks[-1], dtype=torch.long),
        torch.empty(0, ks[-1], dtype=dtype),
        torch.empty(0, dtype=dtype),
    )
    results = {}
    for s in ks:
        chunks = parts[s] or [(empty[0][:, :s], empty[1][:, :s], empty[2])]
        results[s] = OMPResult(*(torch.cat(column) for column in zip(*chunks, strict=True)))
    return results
