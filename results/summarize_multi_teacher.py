#!/usr/bin/env python3
"""The table of results/multi_teacher.md, generated from the committed run outputs.

    summarize_multi_teacher.py write            # regenerate the table in results/multi_teacher.md
    summarize_multi_teacher.py write --check    # exit 1 if results/multi_teacher.md is not current
    summarize_multi_teacher.py table            # print the table

Two tables:
- `results/multi_teacher` (random-init student): reads results/multi_teacher/ (written by
  `results/multi_teacher_runs.py collect`): per setting `eval.json` (the exported student's
  held-out BPB on the same bytes for every setting), `metrics.json` (the run's last logged
  metrics) and `wall_seconds`; `init_eval.json` is the untrained student.
- `results/multi_teacher/fvt_qwen2` (pretrained FVT student): reads what
  results/run_multi_teacher_fvt.sh writes under results/multi_teacher/fvt_qwen2/ (per setting
  and seed, `ctd evaluate --json` objects as results/transfer_equal_tables.py reads them), with
  the teacher and the untrained FVT student from results/transfer_equal/zero_shot/.
`write` replaces the lines between `<!-- table: NAME -->` and `<!-- end table -->`
(results/markdown_tables.py), so rerunning it reproduces the file byte for byte.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import markdown_tables
from transfer_equal_tables import LANGUAGES, Row

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


FVT_RUNS = RUNS / "fvt_qwen2"
ZERO_SHOT = REPO / "results" / "transfer_equal" / "zero_shot"
TRANSFER_SFT = REPO / "results" / "transfer_equal" / "qwen2" / "sft" / "seed0"
FVT_SETTINGS = {  # folder: label (the order of the table)
    "both_ensemble": "SmolLM2 + Gemma-3, `ensemble`",
    "both_sum": "SmolLM2 + Gemma-3, `sum`",
    "smollm2": "SmolLM2 only",
    "gemma3": "Gemma-3 only",
}
FVT_TASKS = {"piqa": "PIQA", "arc_easy": "ARC-Easy"}


def fvt_rows() -> list[Row]:
    """The reference rows, then every finished run.

    References: the teachers, the untrained FVT student, and SFT alone from the same start at
    the same budget (task transfer).
    """
    references = [
        Row("teacher SmolLM2-135M-Instruct", ZERO_SHOT, "teacher"),
        Row("teacher Gemma-3-270m", FVT_RUNS / "zero_shot", "gemma3"),
        Row("FVT -> Qwen2, untrained (the start)", ZERO_SHOT, "fvt_qwen2"),
        Row("SFT only, no teacher (results/transfer.md)", TRANSFER_SFT, "downstream"),
    ]
    runs = [
        Row(f"{label}, seed {folder.name.removeprefix('seed')}", folder, "downstream")
        for setting, label in FVT_SETTINGS.items()
        for folder in sorted((FVT_RUNS / setting).glob("seed*"))
    ]
    return [row for row in references + runs if row.report is not None]


def fvt_table() -> str:
    """Accuracy on FVT_TASKS, in-domain and out-of-domain BPB, and fit minutes of each row."""
    tasks = " | ".join(FVT_TASKS.values())
    languages = " | ".join(f"OOD {language}" for language in LANGUAGES)
    lines = [
        f"| model | {tasks} | in-domain BPB | {languages} | fit min |",
        "|---|" + "---|" * (len(FVT_TASKS) + len(LANGUAGES) + 2),
    ]
    for row in fvt_rows():
        assert row.report is not None
        results = row.report["tasks"]
        accuracies = [f"{results[t]['acc']:.1%}" if t in results else "-" for t in FVT_TASKS]
        bpbs = [_number(value) for value in row.bpb().values()]
        minutes = _number(row.wall_minutes, 1) if row.wall_minutes is not None else "-"
        lines.append(f"| {row.label} | {' | '.join(accuracies + bpbs)} | {minutes} |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {
    "results/multi_teacher": table,
    "results/multi_teacher/fvt_qwen2": fvt_table,
}


def main(argv: list[str]) -> int:
    """`write [--check]` (results/markdown_tables.py) or `table`."""
    if argv == ["table"]:
        print(table())
        return 0
    return markdown_tables.main(DOCUMENT, TABLES, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
