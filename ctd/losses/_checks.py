"""Input validation shared by the losses: every error names the tensor and its shape."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _shape(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def check_ndim(name: str, x: Tensor, ndim: int) -> None:
    """Raise if ``x`` does not have ``ndim`` dimensions."""
    if x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {_shape(x)}")


def check_shape(name: str, x: Tensor, shape: Sequence[int | None]) -> None:
    """Raise if ``x`` does not match ``shape`` (``None`` matches any size)."""
    ok = x.dim() == len(shape) and all(
        s is None or s == d for s, d in zip(shape, x.shape, strict=False)
    )
    if not ok:
        want = ", ".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"{name} must have shape ({want}), got {_shape(x)}")


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise if ``a`` and ``b`` differ in shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} {_shape(a)} and {name_b} {_shape(b)} must have the same shape")


def check_same_batch(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise if ``a`` and ``b`` differ in their first (batch) dimension."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"batch sizes differ: {name_a} has shape {_shape(a)}, {name_b} has shape {_shape(b)}"
        )


def check_no_nan(name: str, x: Tensor) -> None:
    """Raise if a floating-point ``x`` contains NaN."""
    if x.is_floating_point() and bool(torch.isnan(x).any()):
        raise ValueError(f"{name} (shape {_shape(x)}) contains NaN")


def check_index_range(name: str, x: Tensor, low: int, high: int | None) -> None:
    """Raise if an integer ``x`` has entries outside ``[low, high)`` (``high=None``: unbounded)."""
    if x.is_floating_point() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {x.dtype} with shape {_shape(x)}")
    if x.numel() == 0:
        return
    lo, hi = int(x.min()), int(x.max())
    if lo < low or (high is not None and hi >= high):
        bound = "inf" if high is None else str(high)
        raise ValueError(
            f"{name} (shape {_shape(x)}) has values in [{lo}, {hi}], outside [{low}, {bound})"
        )
