"""Global normalisation under data parallelism, checked in a real 2-process gloo group.

Two ranks each hold half of a batch whose rows have *different* numbers of valid ALM chunks and
scored SFT tokens. Each rank's loss uses `global_mean_normalizer`; averaging the ranks'
parameter gradients (what DDP does) must give the gradient of the one-process loss on the whole
batch, and GradMag with `mean_over_ranks` must pick the one-process weights.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from ctd.losses import alm_loss, approx_gradmag_preserve_mag, sft_loss
from ctd.trainers.distributed import (
    any_rank,
    global_mean_normalizer,
    mean_over_ranks,
    world_size,
)

WIDTH = 5
# Student chunk index: 3 chunks, teacher: the same chunks over other tokens.
STUDENT_CHUNKS = torch.tensor([-1, 0, 0, 1, 2, 2])
TEACHER_CHUNKS = torch.tensor([-1, 0, 1, 1, 1, 2, 2])
# Rows 0-1 go to rank 0, rows 2-3 to rank 1; masks make the valid chunk counts 3, 1 | 2, 3.
STUDENT_MASK = torch.tensor(
    [[1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]
).bool()


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "x": torch.randn(4, 6, WIDTH, generator=generator),
        "teacher": -F.softplus(torch.randn(4, 7, generator=generator)),
    }


def losses(theta: torch.Tensor, rows: slice, normalizer: object) -> list[torch.Tensor]:
    data = batch()
    student = -F.softplus(data["x"][rows] @ theta)  # (b, 6) log-probs from the "model"
    b = student.shape[0]
    alm = alm_loss(
        student,
        data["teacher"][rows],
        student_chunk_index=STUDENT_CHUNKS.expand(b, -1),
        teacher_chunk_index=TEACHER_CHUNKS.expand(b, -1),
        student_mask=STUDENT_MASK[rows],
        normalizer=normalizer,  # type: ignore[arg-type]
    )
    sft = sft_loss(student, STUDENT_MASK[rows], normalizer=normalizer)  # type: ignore[arg-type]
    return [alm, sft]


def reference() -> dict[str, torch.Tensor]:
    theta = torch.linspace(-1, 1, WIDTH, requires_grad=True)
    alm, sft = losses(theta, slice(0, 4), None)
    grads = {
        name: torch.autograd.grad(loss, theta, retain_graph=True)[0]
        for name, loss in (("alm", alm), ("sft", sft))
    }
    combined = approx_gradmag_preserve_mag([alm, sft], [theta])
    grads["gradmag"] = torch.autograd.grad(combined, theta)[0]
    return grads


def rank_main(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        theta = torch.linspace(-1, 1, WIDTH, requires_grad=True)
        rows = slice(2 * rank, 2 * rank + 2)
        alm, sft = losses(theta, rows, global_mean_normalizer)
        grads = {}
        for name, loss in (("alm", alm), ("sft", sft)):
            grads[name] = mean_over_ranks(torch.autograd.grad(loss, theta, retain_graph=True)[0])
        combined = approx_gradmag_preserve_mag([alm, sft], [theta], reduce_gradient=mean_over_ranks)
        grads["gradmag"] = mean_over_ranks(torch.autograd.grad(combined, theta)[0])  # DDP
        grads["world_size"] = torch.tensor(world_size())
        grads["any"] = torch.tensor(any_rank(rank == 1))
        torch.save(grads, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_ranks_average_to_the_one_process_gradient(tmp_path: Path) -> None:
    mp.start_processes(rank_main, args=(free_port(), str(tmp_path)), nprocs=2, start_method="fork")
    expected = reference()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert int(got["world_size"]) == 2
        assert bool(got["any"])  # true on rank 1 only, seen by both
        for name, value in expected.items():
            torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-7, msg=name)


def test_one_process_is_the_local_count() -> None:
    assert world_size() == 1
    assert float(global_mean_normalizer(torch.tensor(7.0))) == 7.0
    assert float(global_mean_normalizer(torch.tensor(0.0))) == 1.0  # as alm_loss's default
    gradient = torch.randn(3)
    assert mean_over_ranks(gradient) is gradient
    assert any_rank(False) is False
