"""OMP transplant speed: ctd's screened and exact OMP vs mergekit's `batch_omp` vs a numpy loop.

Run for real: `.venv/bin/pytest tests/benchmarks/test_transplant_bench.py --benchmark-enable -s`
(Gemma-3-sized donor width d=640, 46,253 anchors as for SmolLM2 -> Gemma-3, k=64; 256 new
tokens for the screened search, 32 for the exact ones, timed side by side in one process, each
rate scaled to the 215,891 new Gemma-3 tokens, and the peak RSS). mergekit-tokensurgeon's
`batch_omp` (exact search; LGPL-3.0, read from an installed `mergekit` package, never vendored)
is what users would pick instead; without the package its row is skipped. With
--benchmark-disable (CI) a small case checks that the implementations give the same picks.
"""

from __future__ import annotations

import importlib.util
import resource
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import torch

from ctd.models.omp import orthogonal_matching_pursuit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from model_support import numpy_omp  # noqa: E402  (the tests' independent reference)

pytestmark = pytest.mark.benchmark
GEMMA_NEW_TOKENS = 215_891
T = TypeVar("T")


def numpy_loop(targets: np.ndarray, atoms: np.ndarray, k: int) -> np.ndarray:
    """The per-token baseline: the tests' textbook OMP, one target at a time."""
    return np.array([numpy_omp(target, atoms, k)[0] for target in targets])


def mergekit_batch_omp() -> Callable[..., tuple[torch.Tensor, torch.Tensor]] | None:
    """mergekit's `batch_omp`, from an installed `mergekit` (its package imports need extras).

    `mergekit.tokensurgeon` is mounted as a bare package so that only `omp.py` and its sibling
    `rope_helpers.py` run, not the package's `__init__` (pydantic, click, ...).
    """
    spec = importlib.util.find_spec("mergekit")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokensurgeon"
    if not (folder / "omp.py").exists():
        return None
    package = types.ModuleType("_mergekit_tokensurgeon")
    package.__path__ = [str(folder)]
    sys.modules.setdefault("_mergekit_tokensurgeon", package)
    module = importlib.import_module("_mergekit_tokensurgeon.omp")
    return module.batch_omp  # type: ignore[no-any-return]


def timed(times: dict[str, float], name: str, rows: int, run: Callable[[], T]) -> T:
    """Run `run`, store its seconds per row under `name`, return its result."""
    start = time.perf_counter()
    result = run()
    times[name] = (time.perf_counter() - start) / rows
    return result


def test_omp_speed(request: pytest.FixtureRequest) -> None:
    enabled = not request.config.getoption("benchmark_disable", default=True)
    n, exact_n, anchors, width, k = (256, 32, 46_253, 640, 64) if enabled else (8, 8, 500, 32, 6)
    generator = torch.Generator().manual_seed(0)
    atoms = torch.randn(anchors, width, generator=generator)
    targets = torch.randn(n, width, generator=generator)
    few = targets[:exact_n]
    times: dict[str, float] = {}
    screened = timed(
        times,
        "ctd_screened_128",
        n,
        lambda: orthogonal_matching_pursuit(targets, atoms, k, candidates=128, batch_size=256)[k],
    )
    exact = timed(
        times, "ctd_exact", exact_n, lambda: orthogonal_matching_pursuit(few, atoms, k)[k]
    )
    batch_omp = mergekit_batch_omp()
    if batch_omp is not None:
        picked, coefficients = timed(
            times, "mergekit_batch_omp_exact", exact_n, lambda: batch_omp(few, atoms, k)
        )
        fit = torch.bmm(coefficients.unsqueeze(1), atoms[picked]).squeeze(1)
        mergekit_residual = (few - fit).norm(dim=1)
        # mergekit ranks raw inner products, ctd unit atoms: same optimum class, near residuals
        assert exact.residual_norms.mean() <= mergekit_residual.mean() * 1.02
    loop_n = min(exact_n, 16)
    start = time.perf_counter()
    looped = numpy_loop(targets[:loop_n].double().numpy(), atoms.double().numpy(), k)
    times["numpy_loop"] = (time.perf_counter() - start) / loop_n
    assert (exact.indices[:loop_n].numpy() == looped).mean() > 0.9
    assert screened.residual_norms[:exact_n].mean() >= exact.residual_norms.mean() * 0.999
    if enabled:
        print(
            {name: f"{t * GEMMA_NEW_TOKENS / 60:.1f} min for Gemma-3" for name, t in times.items()}
        )
        print("peak RSS MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
