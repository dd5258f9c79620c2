"""What the losses need from the other ranks under data parallelism (DDP, FSDP, DeepSpeed).

DDP averages the ranks' gradients. For the average to equal one process's gradient on the
global batch, each rank divides its sum of per-item losses by `global_count / world_size`
(`global_mean_normalizer`), not by its own count: then
`mean_r grad(S_r / (N / W)) = grad(sum_r S_r) / N`. GradMag's weights come from the gradients
of each loss averaged over ranks (`mean_over_ranks`), so every rank uses the same weights.
Outside `torch.distributed` (one process) each function is the identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """Processes in the default group (1 outside `torch.distributed`)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_mean_normalizer(count: Tensor) -> Tensor:
    """`max(sum of count over ranks, 1) / world_size`: the divisor of a rank's loss sum.

    Shapes: count () -> ().
    """
    total = count.detach().clone()
    ranks = world_size()
    if ranks > 1:
        dist.all_reduce(total)
    return total.clamp_min(1) / ranks


def mean_over_ranks(gradient: Tensor) -> Tensor:
    """The element-wise mean of `gradient` over ranks (a new tensor; no autograd).

    Shapes: any -> the same.
    """
    ranks = world_size()
    if ranks == 1:
        return gradient
    total = gradient.detach().clone()
    dist.all_reduce(total)
    return total / ranks


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Whether `flag` is true on any rank (every rank must call it)."""
    if world_size() == 1:
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value)
    return bool(value > 0)
