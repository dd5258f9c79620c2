"""Binarised chunk divergences of ALM, ``f(student_chunk_logprob, teacher_chunk_logprob)``.

Each takes chunk log-likelihoods ``student`` and ``teacher`` (<= 0, student first as in every
loss of :mod:`ctd.losses`), the binarisation
temperature ``tau`` and a shift ``eps`` and returns the elementwise divergence. With
``a = teacher / tau - eps`` and ``b = student / tau - eps``, ``exp(a)`` and ``exp(b)`` are the
probabilities of the Bernoulli "this chunk occurs" events (Minixhofer, Vulić, Ponti 2025,
arXiv 2503.20083, Sec. 3, Eq. binarised f-divergence).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

Divergence = Callable[[Tensor, Tensor, float, float], Tensor]


def log1mexp(x: Tensor) -> Tensor:
    """Stable ``log(1 - exp(x))`` for ``x < 0``.

    Shapes: (...) -> (...).
    """
    small = x < -math.log(2.0)
    return torch.where(small, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def binary_ce(student: Tensor, teacher: Tensor, tau: float, eps: float) -> Tensor:
    """Binary cross-entropy of Bernoulli(p_T^(1/tau)) against Bernoulli(p_S^(1/tau))."""
    a, b = teacher / tau - eps, student / tau - eps
    return -(torch.exp(a) * b + (-torch.expm1(a)) * log1mexp(b))


def reverse_binary_kl(student: Tensor, teacher: Tensor, tau: float, eps: float) -> Tensor:
    """Binary KL(student || teacher) of the binarised chunk probabilities."""
    a, b = teacher / tau - eps, student / tau - eps
    return torch.exp(b) * (b - a) + (-torch.expm1(b)) * (log1mexp(b) - log1mexp(a))


def absolute(student: Tensor, teacher: Tensor, tau: float, eps: float) -> Tensor:
    """``|log p_T - log p_S|`` (no temperature)."""
    return (teacher - student).abs()


def abs_exp(student: Tensor, teacher: Tensor, tau: float, eps: float) -> Tensor:
    """``|p_T^(1/tau) - p_S^(1/tau)|``."""
    return (torch.exp(teacher / tau - eps) - torch.exp(student / tau - eps)).abs()


def binary_kl_temp_limit(student: Tensor, teacher: Tensor, tau: float, eps: float) -> Tensor:
    """Limit of ``tau * binary KL(T || S)`` as tau -> inf (eps-shifted, no temperature)."""
    t, s = teacher - eps, student - eps
    return (t - s) + t * torch.log(-s) - t * torch.log(-t)


def joschu_k2(student: Tensor, teacher: Tensor, tau: float, eps: float) -> Tensor:
    """Schulman's k2 estimator ``0.5 * r^2`` with ``r = (log p_T - log p_S) / tau``."""
    return 0.5 * ((teacher - student) / tau) ** 2


def joschu_k3(student: Tensor, teacher: Tensor, tau: float, eps: float) -> Tensor:
    """Schulman's k3 estimator ``exp(r) - 1 - r`` with ``r = (log p_T - log p_S) / tau``."""
    ratio = (teacher - student) / tau
    return torch.expm1(ratio) - ratio


ALM_DIVERGENCES: dict[str, Divergence] = {
    "binary_ce": binary_ce,
    "reverse_binary_kl": reverse_binary_kl,
    "abs": absolute,
    "abs_exp": abs_exp,
    "binary_kl_temp_limit": binary_kl_temp_limit,
    "joschu_k2": joschu_k2,
    "joschu_k3": joschu_k3,
}
