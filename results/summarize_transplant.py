"""Write the tables of results/transplant.md from the committed outputs in results/transplant/.

    .venv/bin/python results/summarize_transplant.py write            # regenerate the tables
    .venv/bin/python results/summarize_transplant.py write --check    # exit 1 if out of date

Each `<!-- table: NAME -->` ... `<!-- end table -->` block is replaced by the table NAME:
`zero_shot` and `zero_shot_facts` (results/transplant_eval.py -> zero_shot.json), `held_out`
and `new_rows` (results/transplant_holdout.py -> holdout.json), `numerals`
(results/transplant_numerals.py -> numerals.json), `after_fit` (results/run_transplant_fit.sh
-> after_fit.json) and `downstream` (`ctd evaluate` -> downstream/*.json).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import markdown_tables

RESULTS = Path(__file__).resolve().parent
RUNS = RESULTS / "transplant"


def _load(name: str) -> dict[str, Any]:
    """One committed output."""
    return json.loads((RUNS / f"{name}.json").read_text())


def zero_shot() -> str:
    """Zero-shot bits per byte of every init, next to the base model."""
    result = _load("zero_shot")
    scores, sets = result["scores"], list(result["texts"])
    first = next(iter(scores.values()))
    lines = ["| init | " + " | ".join(f"{name} BPB" for name in sets) + " |"]
    lines.append("|---|" + "---|" * len(sets))
    base = " | ".join(f"{first[name]['base_bpb']:.3f}" for name in sets)
    lines.append(f"| base model itself (SmolLM2 tokenizer) | {base} |")
    for init, by_set in scores.items():
        cells = " | ".join(f"{by_set[name]['student_bpb']:.3f}" for name in sets)
        lines.append(f"| {init} | {cells} |")
    return "\n".join(lines)


def zero_shot_facts() -> str:
    """What the zero-shot run held out, planned and spent."""
    result = _load("zero_shot")
    texts = ", ".join(
        f"{name}: {t['docs']} docs, {t['bytes']} bytes" for name, t in result["texts"].items()
    )
    residual = ", ".join(f"k={k}: {v:.3f}" for k, v in result["omp_relative_residual"].items())
    return (
        f"Held-out text: {texts}.\n"
        f"Plan: {result['plan']}; unanchored numerals: {len(result['unanchored_numerals'])}; "
        f"candidates: {result['candidates']}; OMP for all k: {result['omp_seconds_all_k']} s; "
        f"plan: {result['plan_seconds']} s; peak RSS {result['peak_rss_mb']} MB.\n"
        f"Mean relative donor-space residual ||x - fit|| / ||x||: {residual}."
    )


def held_out() -> str:
    """Held-out anchors: predicted vs true base rows."""
    result = _load("holdout")
    lines = ["| prediction | cosine | relative error | norm ratio mean | norm ratio max |"]
    lines.append("|---|---|---|---|---|")
    for name, row in result["held_out"].items():
        lines.append(
            f"| {name} | {row['cosine']:.4f} | {row['relative_error']:.4f} | "
            f"{row['norm_ratio_mean']:.2f} | {row['norm_ratio_max']:.2f} |"
        )
    return "\n".join(lines)


def new_rows() -> str:
    """Coefficient and row sizes of OMP codes for new Gemma-3 rows."""
    result = _load("holdout")
    lines = ["| OMP | coefficient L1 median / q99 / max | row norm q99 / max |"]
    lines.append("|---|---|---|")
    for name, row in result["new_rows"].items():
        lines.append(
            f"| {name} | {row['coefficient_l1_median']:.2f} / {row['coefficient_l1_q99']:.2f} / "
            f"{row['coefficient_l1_max']:.2f} | {row['row_norm_q99']:.2f} / "
            f"{row['row_norm_max']:.2f} |"
        )
    lines.append("")
    lines.append(f"Base (SmolLM2) anchor rows have a mean norm of {result['base_row_norm_mean']}.")
    return "\n".join(lines)


def numerals() -> str:
    """Numeral tokens without an anchor, per new tokenizer."""
    result = _load("numerals")
    lines = ["| new tokenizer | vocabulary | numerals without an anchor | examples |"]
    lines.append("|---|---|---|---|")
    for name, row in result["tokenizers"].items():
        examples = ", ".join(f"`{e}`" for e in row["examples"]) or "-"
        lines.append(
            f"| {name} | {row['vocabulary']} | {row['unanchored_numerals']} | {examples} |"
        )
    return "\n".join(lines)


def after_fit() -> str:
    """Bits per byte of each start before and after the equal `ctd fit` budget."""
    before, after = _load("zero_shot")["scores"], _load("after_fit")["scores"]
    sets = list(_load("zero_shot")["texts"])
    header = " | ".join(f"{name} BPB before -> after" for name in sets)
    lines = [f"| init | {header} | last train SFT / ALM | wall time |"]
    lines.append("|---|" + "---|" * (len(sets) + 2))
    first = next(iter(after.values()))
    base = " | ".join(f"{first[name]['base_bpb']:.3f}" for name in sets)
    lines.append(f"| base model itself (SmolLM2 tokenizer) | {base} | - | - |")
    for init, by_set in after.items():
        cells = " | ".join(
            f"{before[init][name]['student_bpb']:.3f} -> **{by_set[name]['student_bpb']:.3f}**"
            for name in sets
        )
        run = by_set["run"]
        losses = f"{run['train/sft']:.3f} / {run['train/alm']:.4f}"
        lines.append(f"| {init} | {cells} | {losses} | {run['wall_seconds'] / 60:.0f} min |")
    return "\n".join(lines)


def downstream() -> str:
    """Zero-shot downstream accuracy (`ctd evaluate`) before and after the `ctd fit` budget."""
    rows = {
        path.stem: json.loads(path.read_text()) for path in sorted(RUNS.glob("downstream/*.json"))
    }
    tasks = list(rows["base"]["tasks"])
    header = " | ".join(f"{task} acc / acc_per_byte" for task in tasks)
    lines = [f"| model | {header} |", "|---|" + "---|" * len(tasks)]
    order = (
        ["base"]
        + [n for n in rows if n.startswith("zero_shot")]
        + [n for n in rows if n.startswith("after_fit")]
    )
    for name in order:
        cells = " | ".join(
            f"{rows[name]['tasks'][t]['acc']:.3f} / {rows[name]['tasks'][t]['acc_per_byte']:.3f}"
            for t in tasks
        )
        lines.append(f"| {name} | {cells} |")
    count = rows["base"]["tasks"][tasks[0]]["num_questions"]
    lines.append("")
    lines.append(
        f"First {count} questions of each task, rc 0-shot (chance: PIQA 0.5, ARC-Easy 0.25)."
    )
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {
    "after_fit": after_fit,
    "downstream": downstream,
    "zero_shot": zero_shot,
    "zero_shot_facts": zero_shot_facts,
    "held_out": held_out,
    "new_rows": new_rows,
    "numerals": numerals,
}


def main() -> int:
    """`write [--check]`: regenerate results/transplant.md (or check it is up to date)."""
    return markdown_tables.main(RESULTS / "transplant.md", TABLES, sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
