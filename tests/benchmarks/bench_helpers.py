"""What the benchmarks share: interleaved step timing, and recording figures for BENCHMARKS.md.

Timing: every variant runs once per round, in an order rotated each round, after a warm-up
call each; wall (`time.perf_counter`) and CPU (`time.process_time`, which does not count time
spent descheduled, so it is the less load-sensitive of the two) medians are kept.

Recording: `BenchRun.save(name, figures)` writes `tests/benchmarks/figures/NAME.json` (committed)
with the figures and a stamp (command, machine, date, `os.getloadavg()` at the start and the end);
`tests/benchmarks/write_tables.py write` turns those files into the marked tables of
BENCHMARKS.md. Only a benchmark run (`--benchmark-enable`) records; the CI smoke runs do not.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIGURES = Path(__file__).resolve().parent / "figures"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class StepTimes:
    """Medians (seconds) of interleaved runs, per variant, and every round's wall time."""

    wall: dict[str, float]
    cpu: dict[str, float]
    per_round_wall: dict[str, list[float]]

    def figures(self, digits: int = 3) -> dict[str, Any]:
        """`NAME_s`, `NAME_cpu_s` and `per_round_wall`, rounded, for a figures file."""
        result: dict[str, Any] = {f"{n}_s": round(v, digits) for n, v in self.wall.items()}
        result.update({f"{n}_cpu_s": round(v, digits) for n, v in self.cpu.items()})
        result["per_round_wall"] = {
            name: [round(value, digits) for value in values]
            for name, values in self.per_round_wall.items()
        }
        return result


def timed(step: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved_medians(
    steps: Mapping[str, Callable[[], object]], rounds: int = 5, warmup: bool = True
) -> StepTimes:
    """Run every step once per round, order rotated each round; medians per step."""
    if warmup:
        for step in steps.values():
            step()
    names = list(steps)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(steps[name]))
    return StepTimes(
        wall={name: statistics.median(t[0] for t in ts) for name, ts in times.items()},
        cpu={name: statistics.median(t[1] for t in ts) for name, ts in times.items()},
        per_round_wall={name: [t[0] for t in ts] for name, ts in times.items()},
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpus_allowed() -> int | None:
    """CPUs this process may run on: fewer than cpu_count when pinned (taskset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    import torch

    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_allowed": _cpus_allowed(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def command() -> str:
    """The command line of this run (pytest, or `python SCRIPT` for a script), with
    OMP_NUM_THREADS and CTD_* settings if set."""
    argv = [os.path.relpath(sys.argv[0], ROOT) if os.path.isabs(sys.argv[0]) else sys.argv[0]]
    if argv[0].endswith(".py"):
        argv.insert(0, os.path.relpath(sys.executable, ROOT))
    argv += sys.argv[1:]
    settings = sorted(
        f"{name}={value}"
        for name, value in os.environ.items()
        if name == "OMP_NUM_THREADS" or name.startswith("CTD_")
    )
    return shlex.join([*settings, *argv])


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class BenchRun:
    """One benchmark's run: the stamp taken at its start, completed and written by `save`."""

    started: str = field(default_factory=_now)
    load_start: float = field(default_factory=lambda: round(os.getloadavg()[0], 1))

    def save(self, name: str, figures: Mapping[str, Any], directory: Path = FIGURES) -> Path:
        """Write `directory/NAME.json`: the figures and the run's stamp."""
        stamp = {
            "command": command(),
            "machine": machine(),
            "started": self.started,
            "finished": _now(),
            "load_average": [self.load_start, round(os.getloadavg()[0], 1)],
        }
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.json"
        path.write_text(json.dumps({"stamp": stamp, "figures": dict(figures)}, indent=1) + "\n")
        return path
