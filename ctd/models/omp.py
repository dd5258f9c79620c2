"""Batched Orthogonal Matching Pursuit: each target row as a sparse combination of atoms.

OMP (Pati et al., 1993) picks, `k` times, the atom most correlated with the current residual
(atoms compared after scaling to unit norm), then refits all picked atoms by least squares. Here
every target of a batch runs at once, in Batch-OMP form (Rubinstein, Zibulevsky & Elad, 2008):
Gram-Schmidt is carried out on the inner products of the searched atoms (a Gram matrix formed
once per batch), so a step costs O(searched atoms x step) per target, never a pass over
d-dimensional atoms, and the coefficients come from one triangular solve at the end (for every
requested sparsity: the first `s` picks of a `k`-atom run are the picks of an `s`-atom run, OMP
being greedy). An atom nearly in the span of the picked ones is not used (`min_new_share`).

`candidates` screens the dictionary: each target searches only the `candidates` atoms most
correlated with the target itself (one matrix product per batch). With `candidates=None` (or at
least the number of atoms) the search is over every atom: exact OMP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


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


_TINY_SHARE = 1e-6
"""Below this share of its norm an atom's new direction is rounding noise, whatever the guard."""


class _Searched:
    """The atoms one batch searches, seen only through inner products with them.

    Pool mode (each target its own `pool` of M atom ids): the pool's Gram matrix is formed once
    per batch, one batched GEMM, and every later step reads a column of it. Exact mode (every
    atom): a step's column is one GEMM of the picked atoms against the whole dictionary.

    Shapes: targets (B, d), atoms (A, d), pool (B, M) or None; `initial` and `column` (B, S)
    with S = M or A.
    """

    def __init__(self, targets: Tensor, atoms: Tensor, pool: Tensor | None) -> None:
        self.atoms, self.pool = atoms, pool
        if pool is None:
            self.initial = targets @ atoms.T  # (B, A)
            self.squared_norms = (atoms * atoms).sum(dim=1).expand(targets.shape[0], -1)
        else:
            members = atoms[pool]  # (B, M, d)
            self.initial = torch.bmm(members, targets.unsqueeze(2)).squeeze(2)  # (B, M)
            self.gram = torch.bmm(members, members.transpose(1, 2))  # (B, M, M)
            self.squared_norms = torch.diagonal(self.gram, dim1=1, dim2=2)  # (B, M)

    def column(self, choice: Tensor) -> Tensor:
        """Inner products of each target's picked atom with all its searched atoms: (B, S)."""
        if self.pool is None:
            return self.atoms[choice] @ self.atoms.T
        rows = torch.arange(choice.shape[0], device=choice.device)
        return self.gram[rows, :, choice]

    def atom_ids(self, choice: Tensor) -> Tensor:
        """Dictionary ids of the picks (positions in the pool in pool mode)."""
        if self.pool is None:
            return choice
        return self.pool[torch.arange(choice.shape[0], device=choice.device), choice]


def _picks(searched: _Searched, k: int, min_new_share: float) -> tuple[Tensor, Tensor, Tensor]:
    """Greedy picks of one batch: (atom ids (B, k), R (B, k, k), z (B, k)).

    Gram-Schmidt run in the searched atoms' coordinates: `projected[:, :, s]` holds the inner
    products of every searched atom with the s-th orthonormal direction, so the correlations with
    the residual are updated without touching d-dimensional vectors (Batch-OMP, Rubinstein,
    Zibulevsky & Elad 2008). The picked atoms are `R.T @ directions`; `z` = directions @ target.
    """
    correlation = searched.initial.clone()  # (B, S): <atom, residual>
    batch, size = correlation.shape
    norms = searched.squared_norms.clamp_min(0).sqrt()  # (B, S)
    scale = 1.0 / norms.clamp_min(torch.finfo(norms.dtype).tiny)
    projected = correlation.new_zeros(batch, size, k)  # (B, S, k)
    upper = correlation.new_zeros(batch, k, k)
    z = correlation.new_zeros(batch, k)
    picked = torch.empty(batch, k, dtype=torch.long, device=correlation.device)
    taken = torch.zeros(batch, size, dtype=torch.bool, device=correlation.device)
    rows = torch.arange(batch, device=correlation.device)
    for step in range(k):
        score = (correlation * scale).abs().masked_fill(taken, -1.0)
        choice = score.argmax(dim=1)  # (B,)
        taken[rows, choice] = True
        picked[:, step] = searched.atom_ids(choice)
        done = projected[:, :, :step]  # (B, S, s)
        above = done[rows, choice]  # (B, s): <direction_i, atom>
        new_norm = (searched.squared_norms[rows, choice] - (above * above).sum(1)).clamp_min(0)
        new_norm = new_norm.sqrt()  # (B,): the atom's part orthogonal to the picked ones
        share = max(min_new_share, _TINY_SHARE)
        degenerate = new_norm <= share * norms[rows, choice]
        safe_norm = torch.where(degenerate, torch.ones_like(new_norm), new_norm)
        direction = searched.column(choice) - torch.bmm(done, above.unsqueeze(2)).squeeze(2)
        direction = direction / safe_norm.unsqueeze(1)  # (B, S): <atom_j, new direction>
        direction[degenerate] = 0.0
        upper[:, :step, step] = above.masked_fill(degenerate.unsqueeze(1), 0.0)
        upper[:, step, step] = safe_norm
        initial_here = searched.initial[rows, choice]
        z[:, step] = torch.where(
            degenerate, 0.0, (initial_here - (above * z[:, :step]).sum(1)) / safe_norm
        )
        projected[:, :, step] = direction
        correlation -= direction * z[:, step : step + 1]
    return picked, upper, z


def _batch_codes(
    batch: Tensor, atoms: Tensor, pool: Tensor | None, ks: list[int], min_new_share: float
) -> dict[int, OMPResult]:
    """The codes of one batch for every sparsity in `ks` (one greedy run up to the largest)."""
    picked, upper, z = _picks(_Searched(batch, atoms, pool), ks[-1], min_new_share)
    codes = {}
    for s in ks:
        solved = torch.linalg.solve_triangular(
            upper[:, :s, :s], z[:, :s].unsqueeze(2), upper=True
        ).squeeze(2)  # (B, s)
        fit = torch.bmm(solved.unsqueeze(1), atoms[picked[:, :s]]).squeeze(1)  # (B, d)
        codes[s] = OMPResult(picked[:, :s], solved, (batch - fit).norm(dim=1))
    return codes


def _concatenate(parts: list[OMPResult], sparsity: int, dtype: torch.dtype) -> OMPResult:
    """The batches' codes as one result (an empty one for no targets)."""
    if not parts:
        return OMPResult(
            torch.empty(0, sparsity, dtype=torch.long),
            torch.empty(0, sparsity, dtype=dtype),
            torch.empty(0, dtype=dtype),
        )
    return OMPResult(
        torch.cat([part.indices for part in parts]),
        torch.cat([part.coefficients for part in parts]),
        torch.cat([part.residual_norms for part in parts]),
    )


def orthogonal_matching_pursuit(
    targets: Tensor,
    dictionary: Tensor,
    k: int | Sequence[int],
    *,
    candidates: int | None = None,
    batch_size: int = 64,
    min_new_share: float = 0.1,
    progress: bool = False,
) -> dict[int, OMPResult]:
    """Sparse codes of every target row over the dictionary's rows (atoms), by batched OMP.

    Shapes: targets (N, d), dictionary (A, d); each result (N, s) for s in `k`.

    Args:
        targets: The rows to approximate.
        dictionary: The atoms (any norms; atoms are compared after scaling to unit norm).
        k: The number of atoms per target, or several (one run up to the largest).
        candidates: Search only each target's this many most correlated atoms (None: all).
        batch_size: Targets per batch (memory: batch_size x S x (d + S + k) floats, with S =
            `candidates`; exact search: batch_size x A x (k + 1)).
        min_new_share: An atom is used only if at least this share of its norm is orthogonal
            to the atoms already picked; otherwise it keeps coefficient 0 (its pick is spent).
            Nearly collinear atoms get large, cancelling coefficients that fit the donor space
            but not the base's: at 0 (textbook OMP), 1% of SmolLM2 -> Gemma-3 rows came out
            10-30x the base rows' norm (results/transplant.md).
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
    parts: dict[int, list[OMPResult]] = {s: [] for s in ks}
    starts = range(0, targets.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="OMP", unit="batch")
    with torch.no_grad():
        for start in starts:
            batch = targets[start : start + batch_size].detach().to(dtype)
            pool = None
            if candidates is not None and candidates < atoms.shape[0]:
                scores = (batch @ unit_atoms.T).abs()  # (B, A)
                pool = scores.topk(candidates, dim=1).indices  # (B, M)
            for s, code in _batch_codes(batch, atoms, pool, ks, min_new_share).items():
                parts[s].append(code)
    return {s: _concatenate(parts[s], s, dtype) for s in ks}
