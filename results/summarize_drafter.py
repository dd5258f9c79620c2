#!/usr/bin/env python3
"""The tables of results/drafter.md, generated from the committed run outputs.

    summarize_drafter.py write            # regenerate every table in results/drafter.md
    summarize_drafter.py write --check    # exit 1 if results/drafter.md is not up to date

`results/run_drafter.sh` writes the outputs: `results/drafter/fit/<loss>/metrics.json` and
`wall_seconds` (training), `results/drafter/specdec/<drafter>_g<gamma>_t<temperature>.json`
(the last line of `ctd specdec --json`), and for the cross-tokenizer drafter (Gemma-3 target)
`results/drafter/cross/<untrained|alm>_g<gamma>_t<temperature>.json`, `cross/analytic.json`
(`results/drafter_cross_analytic.py`), `cross/fit.json` and `cross/fit_metrics.json`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import markdown_tables

RESULTS = Path(__file__).resolve().parent
OUTPUTS = RESULTS / "drafter"
LOSSES = {"tvdpp": "TVD++", "kl": "forward KL", "tvd": "TVD"}
DRAFTERS = {"trimmed4": "untrained (trimmed)", **LOSSES}
CROSS_DRAFTERS = {"untrained": "SmolLM2 4 blocks, untrained", "alm": "SmolLM2 4 blocks, ALM"}
SPECDEC_HEADER = (
    "| drafter | gamma | T | alpha | tau | analytic tau | cost ratio c | MBSU | tokens/s "
    "| baseline tokens/s | speed-up | = greedy baseline |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _number(value: object, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def fit_table(folder: Path = OUTPUTS / "fit") -> str:
    """Teacher-forced acceptance on the held-out answers, before and after training."""
    lines = [
        "| loss | alpha before | alpha after | greedy alpha before | greedy alpha after "
        "| TVD after | wall min |",
        "|---|---|---|---|---|---|---|",
    ]
    for loss, name in LOSSES.items():
        path = folder / loss / "metrics.json"
        if not path.is_file():
            continue
        metrics = json.loads(path.read_text())
        wall = float((folder / loss / "wall_seconds").read_text()) / 60
        lines.append(
            f"| {name} | {_number(metrics['initial/val/alpha'])} | {_number(metrics['val/alpha'])} "
            f"| {_number(metrics['initial/val/greedy_alpha'])} "
            f"| {_number(metrics['val/greedy_alpha'])} | {_number(metrics['val/tvd'])} "
            f"| {wall:.1f} |"
        )
    return "\n".join(lines)


def _specdec_row(name: str, r: dict[str, Any]) -> str:
    same = {True: "yes", False: "no"}.get(r.get("matches_baseline"), "-")
    return (
        f"| {name} | {r['gamma']} | {r['temperature']:g} | {_number(r['alpha'])} "
        f"| {_number(r['tau'], 2)} | {_number(r.get('analytic_tau'), 2)} "
        f"| {_number(r['cost_ratio'], 2)} | {_number(r['mbsu'], 2)} "
        f"| {_number(r['tokens_per_s'], 1)} | {_number(r['baseline_tokens_per_s'], 1)} "
        f"| {_number(r['speedup'], 2)} | {same} |"
    )


def _specdec_rows(folder: Path, drafters: dict[str, str]) -> list[str]:
    rows = []
    for gamma in (3, 5):
        for temperature in (0, 1):
            for drafter, name in drafters.items():
                path = folder / f"{drafter}_g{gamma}_t{temperature}.json"
                if path.is_file():
                    rows.append(_specdec_row(name, json.loads(path.read_text())))
    return rows


def specdec_table() -> str:
    """Speculative decoding per same-tokenizer drafter, gamma and temperature."""
    return "\n".join([SPECDEC_HEADER, *_specdec_rows(OUTPUTS / "specdec", DRAFTERS)])


def _analytic_lines(result: dict[str, Any]) -> list[str]:
    """Teacher-forced alpha and tau of each cross-tokenizer drafter on one greedy target text."""
    lines = [
        f"Analytic, on the same text for every drafter ({result['answers']} greedy Gemma-3 "
        f"answers, {result['positions']} target tokens), gamma {result['gamma']}:",
        "",
        "| drafter | T | analytic alpha | analytic tau |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        name = CROSS_DRAFTERS.get(row["drafter"], row["drafter"])
        lines.append(
            f"| {name} | {row['temperature']:g} | {_number(row['alpha'])} "
            f"| {_number(row['tau'], 2)} |"
        )
    return lines


def cross_table() -> str:
    """The cross-tokenizer drafter (TLI) before and after ALM training, and how it was trained."""
    folder = OUTPUTS / "cross"
    lines = [SPECDEC_HEADER, *_specdec_rows(folder, CROSS_DRAFTERS)]
    reports = sorted(folder.glob("*_g*_t*.json"))
    if reports:
        shared = json.loads(reports[0].read_text()).get("shared_tokens")
        lines += ["", f"Shared (draftable) tokens: {shared} of the drafter's vocabulary."]
    analytic = folder / "analytic.json"
    if analytic.is_file():
        lines += ["", *_analytic_lines(json.loads(analytic.read_text()))]
    fit = folder / "fit.json"
    if fit.is_file():
        f = json.loads(fit.read_text())
        m = json.loads((folder / "fit_metrics.json").read_text())
        lines.append("")
        lines.append(
            f"ALM training: {f['steps']} steps of {f['batch_size']} texts "
            f"({f['train_texts']} distinct Gemma-3 answers), {f['wall_seconds'] / 60:.1f} min; "
            f"last step's loss: ALM {_number(m.get('train/alm'))}, "
            f"SFT {_number(m.get('train/sft'))}."
        )
    return "\n".join(lines)


def budget_table() -> str:
    """TVD++ vs forward KL at 48 equal steps: teacher-forced acceptance, then gamma 3 decoding."""
    folder = OUTPUTS / "budget48"
    rows = _specdec_rows(folder / "specdec", LOSSES)
    return "\n".join([fit_table(folder / "fit"), "", SPECDEC_HEADER, *rows])


TABLES: dict[str, Callable[[], str]] = {
    "results/drafter/budget48": budget_table,
    "results/drafter/fit": fit_table,
    "results/drafter/specdec": specdec_table,
    "results/drafter/cross": cross_table,
}


def main() -> int:
    """`write [--check]`: regenerate results/drafter.md (or check it is up to date)."""
    return markdown_tables.main(RESULTS / "drafter.md", TABLES, sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
