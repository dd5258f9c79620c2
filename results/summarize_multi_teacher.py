#!/usr/bin/env python3
"""The table of results/multi_teacher.md, generated from the committed run outputs.

    summarize_multi_teacher.py write            # regenerate the table in results/multi_teacher.md
    summarize_multi_teacher.py write --check    # exit 1 if results/multi_teacher.md is not current
    summarize_multi_teacher.py table            # print the table

Reads results/multi_teacher/ (written by `results/multi_teacher_runs.py collect`): per setting
`eval.json` (the exported student's held-out BPB on the same bytes for every setting),
`metrics.json` (the run's last logged metrics) and `wall_seconds`; `init_eval.json` is the
untrained student. `write` replaces the lines between `<!-- table: results/multi_teacher -->`
and `<!-- end table -->` (results/markdown_tables.py), so rerunning it reproduces the file byte
for byte.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import markdown_tables

REPO = Path(__file__).resolve().parent.parent
RUNS = REPO / "results" / "multi_teacher"
DOCUMENT = REPO / "results" / "multi_teacher.md"
SETTINGS = {  # folder: label (the order of the table)
    "smollm2_gemma3_ensemble": "SmolLM2 + Gemma-3, `ensemble`",
    "smollm2_gemma3_sum": "SmolLM2 + Gemma-3, `sum`",
    "smollm2_only": "SmolLM2 only",
    "gemma3_only": "Gemma-3 only",
    "sft_only__no_teacher": "SFT only (no teacher)",
}
HEADER = (
    "| student trained with | held-out BPB (same bytes) | minus SFT only | train ALM (last) "
    "| train SFT (last) | wall min |\n|---|---|---|---|---|---|"
)


def _read(path: Path) -> dict[str, float]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table() -> str:
    """The markdown table of every finished setting, best held-out BPB in bold."""
    rows = {}
    for folder in SETTINGS:
        scores = _read(RUNS / folder / "eval.json")
        if scores:
            rows[folder] = (scores, _read(RUNS / folder / "metrics.json"))
    init = _read(RUNS / "init_eval.json")
    baseline = rows.get("sft_only__no_teacher", ({}, {}))[0].get("bpb")
    best = min(scores["bpb"] for scores, _ in rows.values()) if rows else None
    lines = [HEADER]
    for folder, (scores, metrics) in rows.items():
        bpb = f"{scores['bpb']:.6f}"
        bpb = f"**{bpb}**" if scores["bpb"] == best else bpb
        ratio = f"{scores['bpb'] - baseline:+.1e}" if baseline else "n/a"
        wall = RUNS / folder / "wall_seconds"
        minutes = _number(float(wall.read_text()) / 60, 1) if wall.is_file() else "n/a"
        lines.append(
            f"| {SETTINGS[folder]} | {bpb} | {ratio} | {_number(metrics.get('train/alm'))} "
            f"| {_number(metrics.get('train/sft'))} | {minutes} |"
        )
    if init:
        lines.append(f"| (untrained init) | {init['bpb']:.6f} | | | | |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {"results/multi_teacher": table}


def main(argv: list[str]) -> int:
    """`write [--check]` (results/markdown_tables.py) or `table`."""
    if argv == ["table"]:
        print(table())
        return 0
    return markdown_tables.main(DOCUMENT, TABLES, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
