"""OMP transplant speed: ctd's screened and exact OMP vs mergekit's `batch_omp` vs a numpy loop.

Run for real: `.venv/bin/pytest tests/benchmarks/test_transplant_bench.py --benchmark-enable -s`
(Gemma-3-sized donor width d=640, 46,253 anchors as for SmolLM2 -> Gemma-3, k=64; 256 new
tokens for the screened search, 32 for the exact ones and 16 for the numpy loop, timed side by
side in one process, 3 interleaved rounds, wall and CPU medians, each rate scaled to the 215,891
new Gemma-3 tokens, and the peak RSS). mergekit-tokensurgeon's
`batch_omp` (exact search; LGPL-3.0, read from an installed `mergekit` package, never vendored)
is what users would pick instead: from an installed `mergekit`, or from the unpacked wheel
folder that `CTD_MERGEKIT_PATH` names (`make bench` downloads mergekit 0.1.5 into
.benchmarks/mergekit and sets it); without either its row is left out and the run says so. A
benchmark run records `figures/transplant.json` for BENCHMARKS.md. With --benchmark-disable (CI)
a small case checks that the implementations give the same picks.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import resource
import sys
import types
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_helpers import BenchRun, StepTimes, interleaved_medians

from ctd.models.omp import orthogonal_matching_pursuit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from model_support import numpy_omp  # noqa: E402  (the tests' independent reference)

pytestmark = pytest.mark.benchmark
GEMMA_NEW_TOKENS = 215_891


def numpy_loop(targets: np.ndarray, atoms: np.ndarray, k: int) -> np.ndarray:
    """The per-token baseline: the tests' textbook OMP, one target at a time."""
    return np.array([numpy_omp(target, atoms, k)[0] for target in targets])


def _mergekit_folder() -> Path | None:
    """`mergekit/` of the wheel folder named by CTD_MERGEKIT_PATH, else of an installed package."""
    named = os.environ.get("CTD_MERGEKIT_PATH")
    if named:
        folder = Path(named) / "mergekit"
        if not (folder / "tokensurgeon" / "omp.py").exists():
            raise FileNotFoundError(f"CTD_MERGEKIT_PATH={named}: no mergekit/tokensurgeon/omp.py")
        return folder
    spec = importlib.util.find_spec("mergekit")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def mergekit_batch_omp() -> Callable[..., tuple[torch.Tensor, torch.Tensor]] | None:
    """mergekit's `batch_omp` (its package imports need extras), None without mergekit.

    `mergekit.tokensurgeon` is mounted as a bare package so that only `omp.py` and its sibling
    `rope_helpers.py` run, not the package's `__init__` (pydantic, click, ...).
    """
    found = _mergekit_folder()
    folder = None if found is None else found / "tokensurgeon"
    if folder is None or not (folder / "omp.py").exists():
        return None
    package = types.ModuleType("_mergekit_tokensurgeon")
    package.__path__ = [str(folder)]
    sys.modules.setdefault("_mergekit_tokensurgeon", package)
    module = importlib.import_module("_mergekit_tokensurgeon.omp")
    return module.batch_omp  # type: ignore[no-any-return]


def _mergekit_version() -> str | None:
    named = os.environ.get("CTD_MERGEKIT_PATH")
    found = importlib.metadata.distributions(name="mergekit", path=[named] if named else sys.path)
    return next((dist.version for dist in found), None)


def _keep(results: dict[str, object], name: str, step: Callable[[], object]) -> None:
    results[name] = step()


def test_omp_speed(request: pytest.FixtureRequest) -> None:
    enabled = not request.config.getoption("benchmark_disable", default=True)
    n, exact_n, anchors, width, k = (256, 32, 46_253, 640, 64) if enabled else (8, 8, 500, 32, 6)
    run = BenchRun()
    generator = torch.Generator().manual_seed(0)
    atoms = torch.randn(anchors, width, generator=generator)
    targets = torch.randn(n, width, generator=generator)
    few = targets[:exact_n]
    loop_n = min(exact_n, 16)
    batch_omp = mergekit_batch_omp()
    results: dict[str, object] = {}
    steps = {
        "ctd_screened_128": lambda: orthogonal_matching_pursuit(
            targets, atoms, k, candidates=128, batch_size=256
        )[k],
        "ctd_exact": lambda: orthogonal_matching_pursuit(few, atoms, k)[k],
        "numpy_loop": lambda: numpy_loop(
            targets[:loop_n].double().numpy(), atoms.double().numpy(), k
        ),
    }
    if batch_omp is not None:
        steps["mergekit_batch_omp_exact"] = lambda: batch_omp(few, atoms, k)
    rounds = 3 if enabled else 1
    times = interleaved_medians(  # side by side, order rotated each round
        {name: partial(_keep, results, name, step) for name, step in steps.items()},
        rounds=rounds,
        warmup=False,
    )
    screened, exact = results["ctd_screened_128"], results["ctd_exact"]
    if batch_omp is not None:
        picked, coefficients = results["mergekit_batch_omp_exact"]
        fit = torch.bmm(coefficients.unsqueeze(1), atoms[picked]).squeeze(1)
        mergekit_residual = (few - fit).norm(dim=1)
        # mergekit ranks raw inner products, ctd unit atoms: same optimum class, near residuals
        assert exact.residual_norms.mean() <= mergekit_residual.mean() * 1.02
    assert (exact.indices[:loop_n].numpy() == results["numpy_loop"]).mean() > 0.9
    assert screened.residual_norms[:exact_n].mean() >= exact.residual_norms.mean() * 0.999
    if not enabled:
        return
    rows = {"ctd_screened_128": n, "ctd_exact": exact_n, "numpy_loop": loop_n}
    rows |= {"mergekit_batch_omp_exact": exact_n} if batch_omp is not None else {}
    shape = {"anchors": anchors, "width": width, "k": k, "rounds": rounds}
    _save_figures(run, times, rows, shape, found_mergekit=batch_omp is not None)


def _save_figures(
    run: BenchRun,
    times: StepTimes,
    rows: dict[str, int],
    shape: dict[str, int],
    found_mergekit: bool,
) -> None:
    """figures/transplant.json: wall and CPU seconds per row of each method, and the set-up."""
    figures = {
        "seconds_per_row": {name: round(times.wall[name] / r, 5) for name, r in rows.items()},
        "cpu_seconds_per_row": {name: round(times.cpu[name] / r, 5) for name, r in rows.items()},
        "rows": rows,
        **shape,
        "new_gemma3_rows": GEMMA_NEW_TOKENS,
        "mergekit_version": _mergekit_version() if found_mergekit else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    run.save("transplant", figures)
    projected = {
        name: f"{t * GEMMA_NEW_TOKENS / 60:.1f} CPU min for Gemma-3"
        for name, t in figures["cpu_seconds_per_row"].items()
    }
    print(projected)
    if not found_mergekit:
        print("mergekit absent: its row is not measured (set CTD_MERGEKIT_PATH or `make bench`)")
