"""OMP transplant speed: screened batched OMP vs exact batched OMP vs a per-token numpy loop.

Run for real: `.venv/bin/pytest tests/benchmarks/test_transplant_bench.py --benchmark-enable -s`
(Gemma-3-sized donor width d=640, 46,253 anchors as for SmolLM2 -> Gemma-3, k=64; 256 new
tokens, timed side by side, with the rate scaled to the 215,891 new Gemma-3 tokens and the peak
RSS). With --benchmark-disable (CI) a small case checks that the three give the same picks.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ctd.models.omp import orthogonal_matching_pursuit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from model_support import numpy_omp  # noqa: E402  (the tests' independent reference)

pytestmark = pytest.mark.benchmark
GEMMA_NEW_TOKENS = 215_891


def numpy_loop(targets: np.ndarray, atoms: np.ndarray, k: int) -> np.ndarray:
    """The per-token baseline: the tests' textbook OMP, one target at a time."""
    return np.array([numpy_omp(target, atoms, k)[0] for target in targets])


def test_omp_speed(request: pytest.FixtureRequest) -> None:
    enabled = not request.config.getoption("benchmark_disable", default=True)
    n, anchors, width, k = (256, 46_253, 640, 64) if enabled else (8, 500, 32, 6)
    generator = torch.Generator().manual_seed(0)
    atoms = torch.randn(anchors, width, generator=generator)
    targets = torch.randn(n, width, generator=generator)
    times = {}
    start = time.perf_counter()
    screened = orthogonal_matching_pursuit(targets, atoms, k, candidates=256)[k]
    times["screened_256"] = time.perf_counter() - start
    start = time.perf_counter()
    exact = orthogonal_matching_pursuit(targets, atoms, k)[k]
    times["exact"] = time.perf_counter() - start
    loop_n = min(n, 16)
    start = time.perf_counter()
    looped = numpy_loop(targets[:loop_n].double().numpy(), atoms.double().numpy(), k)
    times["numpy_loop_per_token"] = (time.perf_counter() - start) / loop_n
    assert (exact.indices[:loop_n].numpy() == looped).mean() > 0.9
    assert screened.residual_norms.mean() >= exact.residual_norms.mean() * 0.999
    if enabled:
        per_token = {name: t / n for name, t in times.items() if name != "numpy_loop_per_token"}
        per_token["numpy_loop_per_token"] = times["numpy_loop_per_token"]
        print(
            {
                name: f"{t * GEMMA_NEW_TOKENS / 60:.1f} min for Gemma-3"
                for name, t in per_token.items()
            }
        )
        print("peak RSS MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
