"""The equal-budget tables of results/transfer.md, from results/run_transfer_equal.sh's outputs.

Under ROOT (results/transfer_equal): `zero_shot/<model>.json` and, per trained run,
`<target>/<method>/seed<k>/` with `downstream.json` (`ctd evaluate --json`: tasks and the
out-of-domain texts), `downstream.indomain.json` (the in-domain text), `metrics.json`,
`config.yaml` and `wall_seconds` of `ctd fit`. Three tables (marker `results/transfer_equal/KIND`):
- `accuracy`: accuracy per task, their mean with its standard error, and the mean as a share of
  the teacher's mean (the retained share);
- `bpb`: bits per byte on the in-domain text and on each out-of-domain language;
- `methods`: per target and method, the mean and the spread (min-max) over seeds of the
  retained share and of the in-domain and English out-of-domain BPB;
- `budget`: the same figures per optimizer budget, for each target and method trained at two
  budgets or more (the runs in ROOT and in ROOT/steps<N>/, each its own schedule of N steps,
  `results/run_transfer_equal.sh` with RUNS/DEST/STEPS), after the untrained FVT start (0 steps).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

TASKS = {"piqa": "PIQA", "arc_easy": "ARC-Easy", "hellaswag": "HellaSwag", "lambada": "LAMBADA"}
LANGUAGES = ("en", "de", "fr", "ja", "zh-cn")
ZERO_SHOT = {
    "teacher": "teacher (SmolLM2-135M-Instruct)",
    "fvt_qwen2": "FVT -> Qwen2, untrained",
    "fvt_bytes": "FVT -> bytes, untrained",
}
TARGETS = {"qwen2": "Qwen2", "bytes": "bytes"}
METHODS = {
    "sft": "SFT",
    "alm": "ALM",
    "alm_sft": "ALM + SFT (paper)",
    "uld_sft": "ULD + SFT",
    "dskd_sft": "DSKD + SFT",
    "mined_sft": "MinED + SFT",
}


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() and path.stat().st_size else None


def _text_bpb(report: dict[str, Any], stem: str) -> float | None:
    """Bits per byte of the text file named `<stem>.txt` in a `ctd evaluate` report."""
    for path, result in report.get("text_files", {}).items():
        if Path(path).name == f"{stem}.txt":
            return float(result["bits_per_byte"])
    return None


class Row:
    """One scored model: a zero-shot model or one trained run (target, method, seed)."""

    def __init__(self, label: str, folder: Path, name: str) -> None:
        self.label = label
        self.report = _load(folder / f"{name}.json")
        self.indomain = _load(folder / f"{name}.indomain.json")
        self.fit = _load(folder / "metrics.json")
        wall = folder / "wall_seconds"
        self.wall_minutes = int(wall.read_text()) / 60 if wall.is_file() else None

    def accuracies(self) -> list[float] | None:
        """Accuracy per task of TASKS (LAMBADA: greedy), or None if not all were scored."""
        if self.report is None or not all(t in self.report["tasks"] for t in TASKS):
            return None
        return [float(self.report["tasks"][t]["acc"]) for t in TASKS]

    def mean_accuracy(self) -> tuple[float, float] | None:
        """The mean of the task accuracies and its binomial standard error."""
        accs = self.accuracies()
        if accs is None or self.report is None:
            return None
        counts = [self.report["tasks"][t]["num_questions"] for t in TASKS]
        variance = sum(a * (1 - a) / n for a, n in zip(accs, counts, strict=True))
        return sum(accs) / len(accs), math.sqrt(variance) / len(accs)

    def bpb(self) -> dict[str, float | None]:
        """In-domain and out-of-domain bits per byte ("indomain", then each language)."""
        values: dict[str, float | None] = {
            "indomain": None if self.indomain is None else _text_bpb(self.indomain, "indomain.en")
        }
        for language in LANGUAGES:
            values[language] = (
                None if self.report is None else _text_bpb(self.report, f"ood.{language}")
            )
        return values


def trained_runs(root: Path) -> list[tuple[str, str, int, Path]]:
    """(target, method, seed, folder) of every trained run under root, in table order."""
    found = []
    for target in TARGETS:
        for method in METHODS:
            for folder in (root / target / method).glob("seed*"):
                match = re.fullmatch(r"seed(\d+)", folder.name)
                if match and folder.is_dir():
                    found.append((target, method, int(match[1]), folder))
    order = {(t, m): i for i, (t, m) in enumerate((t, m) for t in TARGETS for m in METHODS)}
    return sorted(found, key=lambda run: (order[run[0], run[1]], run[2]))


def rows(root: Path) -> list[Row]:
    """The zero-shot models that were scored, then every trained run."""
    zero_shot = [
        Row(label, root / "zero_shot", model)
        for model, label in ZERO_SHOT.items()
        if (root / "zero_shot" / f"{model}.json").is_file()
    ]
    trained = [
        Row(f"{TARGETS[target]}: {METHODS[method]}, seed {seed}", folder, "downstream")
        for target, method, seed, folder in trained_runs(root)
    ]
    return zero_shot + trained


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def teacher_mean(root: Path) -> float | None:
    """The teacher's mean task accuracy (what "retained" divides by)."""
    teacher = Row(ZERO_SHOT["teacher"], root / "zero_shot", "teacher").mean_accuracy()
    return None if teacher is None else teacher[0]


def accuracy_table(root: Path) -> str:
    """Accuracy per task, mean +- standard error, % of the teacher's mean, questions, wall min."""
    head = " | ".join(TASKS.values())
    lines = [
        f"| model | {head} | mean acc (± s.e.) | % of teacher | questions per task | fit min |",
        "|---|" + "---|" * (len(TASKS) + 4),
    ]
    reference = teacher_mean(root)
    for row in rows(root):
        accs, mean = row.accuracies(), row.mean_accuracy()
        if accs is None or mean is None or row.report is None:
            lines.append(f"| {row.label} | not scored |" + " - |" * (len(TASKS) + 3))
            continue
        counts = "/".join(
            str(n) for n in sorted({t["num_questions"] for t in row.report["tasks"].values()})
        )
        kept = f"{mean[0] / reference:.1%}" if reference else "-"
        minutes = _cell(row.wall_minutes, ".1f")
        lines.append(
            f"| {row.label} | {' | '.join(f'{a:.1%}' for a in accs)} "
            f"| {mean[0]:.1%} ± {mean[1]:.1%} | {kept} | {counts} | {minutes} |"
        )
    return "\n".join(lines)


def bpb_table(root: Path) -> str:
    """Bits per byte of every model on the in-domain text and each out-of-domain language."""
    lines = [
        "| model | in-domain | " + " | ".join(f"OOD {lang}" for lang in LANGUAGES) + " |",
        "|---|---|" + "---|" * len(LANGUAGES),
    ]
    for row in rows(root):
        values = row.bpb()
        lines.append(
            f"| {row.label} | " + " | ".join(_cell(v, ".3f") for v in values.values()) + " |"
        )
    return "\n".join(lines)


def _spread(values: list[float], fmt: str) -> str:
    """Mean over seeds, and min-max when there are several."""
    if not values:
        return "-"
    mean = format(sum(values) / len(values), fmt)
    if len(values) == 1:
        return mean
    return f"{mean} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def _group_cells(group: list[Row], reference: float | None) -> str:
    """Seeds, retained share, in-domain and English OOD BPB of a group of runs, over seeds."""
    means = [row.mean_accuracy() for row in group]
    kept = [m[0] / reference * 100 for m in means if m is not None and reference]
    indomain = [v for v in (row.bpb()["indomain"] for row in group) if v is not None]
    english = [v for v in (row.bpb()["en"] for row in group) if v is not None]
    return (
        f"{len(group)} | {_spread(kept, '.1f')} | {_spread(indomain, '.3f')} "
        f"| {_spread(english, '.3f')}"
    )


def methods_table(root: Path) -> str:
    """Per target and method: seeds, retained share, in-domain and English OOD BPB over seeds."""
    lines = [
        "| target | method | seeds | % of teacher, mean (min-max) | in-domain BPB | OOD en BPB |",
        "|---|---|---|---|---|---|",
    ]
    reference = teacher_mean(root)
    runs = trained_runs(root)
    for target, target_label in TARGETS.items():
        for method, method_label in METHODS.items():
            group = [
                row
                for t, m, _, folder in runs
                if (t, m) == (target, method)
                and (row := Row("", folder, "downstream")).report is not None
            ]  # a run still being scored is left out
            if group:
                cells = _group_cells(group, reference)
                lines.append(f"| {target_label} | {method_label} | {cells} |")
    return "\n".join(lines)


def max_steps(folder: Path) -> int:
    """The optimizer steps a run was given (`trainer.max_steps` of its config.yaml)."""
    config = (folder / "config.yaml").read_text()
    match = re.search(r"^trainer:\n(?:  .*\n)*?  max_steps: (\d+)$", config, re.M)
    if match is None:
        raise SystemExit(f"{folder / 'config.yaml'}: no trainer.max_steps")
    return int(match[1])


def budget_runs(root: Path) -> dict[tuple[str, str, int], list[Row]]:
    """Trained runs of root and of its budget folders `steps<N>/`, by (target, method, steps)."""
    groups: dict[tuple[str, str, int], list[Row]] = {}
    for run_set in [root, *sorted(root.glob("steps*"))]:
        for target, method, _, folder in trained_runs(run_set):
            row = Row("", folder, "downstream")
            if row.report is not None:  # a run still being scored is left out
                groups.setdefault((target, method, max_steps(folder)), []).append(row)
    return groups


def budget_table(root: Path) -> str:
    """Per target and method trained at two budgets or more: each budget, from the FVT start."""
    lines = [
        "| target | method | steps | seeds | % of teacher, mean (min-max) "
        "| in-domain BPB | OOD en BPB |",
        "|---|---|---|---|---|---|---|",
    ]
    reference = teacher_mean(root)
    groups = budget_runs(root)
    for target, target_label in TARGETS.items():
        start = root / "zero_shot" / f"fvt_{target}.json"
        for method, method_label in METHODS.items():
            budgets = sorted(steps for t, m, steps in groups if (t, m) == (target, method))
            if len(budgets) < 2:
                continue
            if start.is_file():
                fvt = _group_cells([Row("", root / "zero_shot", f"fvt_{target}")], reference)
                lines.append(f"| {target_label} | {method_label} | 0 (FVT) | {fvt} |")
            for steps in budgets:
                cells = _group_cells(groups[target, method, steps], reference)
                lines.append(f"| {target_label} | {method_label} | {steps} | {cells} |")
    return "\n".join(lines)


TABLES = {
    "accuracy": accuracy_table,
    "bpb": bpb_table,
    "methods": methods_table,
    "budget": budget_table,
}


def table(root: Path, kind: str) -> str:
    """The table KIND (accuracy, bpb, methods, budget) of the runs under root."""
    if kind not in TABLES:
        raise SystemExit(f"unknown equal-budget table {kind!r}; known: {', '.join(TABLES)}")
    return TABLES[kind](root)
