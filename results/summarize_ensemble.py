"""Write the tables of results/ensemble.md from the committed outputs in results/ensemble/.

    .venv/bin/python results/summarize_ensemble.py write            # regenerate the tables
    .venv/bin/python results/summarize_ensemble.py write --check    # exit 1 if out of date

Each `<!-- table: NAME -->` ... `<!-- end table -->` block is replaced by the table NAME:
`bpb` (results/ensemble_bpb.py -> bpb.json), `beam_error` (results/ensemble_bpb.py --exact
-> beam_error.json) and `lockstep` (results/ensemble_bpb.py --lockstep -> lockstep.json).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import markdown_tables

RESULTS = Path(__file__).resolve().parent
RUNS = RESULTS / "ensemble"


def _load(name: str) -> dict[str, Any]:
    """One committed output."""
    return json.loads((RUNS / f"{name}.json").read_text())


def bpb() -> str:
    """Byte-level BPB of each member and of the ensemble per language, same bytes."""
    result = _load("bpb")
    lines = [
        "| text | bytes | SmolLM2 byte-level | Gemma-3 byte-level | **ensemble** | gain vs best "
        "member | SmolLM2 canonical | Gemma-3 canonical | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for language, row in result["languages"].items():
        smol, gemma = row["members"]["smollm2"], row["members"]["gemma3"]
        best = min(smol["byte_bpb"], gemma["byte_bpb"])
        lines.append(
            f"| {language} | {row['num_bytes']} | {smol['byte_bpb']:.3f} | {gemma['byte_bpb']:.3f} "
            f"| **{row['ensemble_bpb']:.3f}** | {row['ensemble_bpb'] - best:+.3f} | "
            f"{smol['canonical_bpb']:.3f} | {gemma['canonical_bpb']:.3f} | {row['seconds']} |"
        )
    lines.append("")
    lines.append(
        f"Beam width {result['beam']}, weights {result['weights']}, "
        f"{result['bytes_per_language']} bytes per language; wall time {result['wall_seconds']} s."
    )
    return "\n".join(lines)


def beam_error() -> str:
    """How far a beam's log2 P(text) is from the exact marginal, on short texts."""
    result = _load("beam_error")["beam_error"]
    widths = ["1", "2", "4", "8"]
    lines = ["| model | text | exact bits | exact token steps | " + " | ".join(
        f"beam {k}: bits - exact" for k in widths) + " |"]  # fmt: skip
    lines.append("|---|---|---|---|" + "---|" * len(widths))
    for model, rows in result.items():
        for row in rows:
            cells = " | ".join(f"{row['beam_bits'][k] - row['exact_bits']:+.4f}" for k in widths)
            lines.append(
                f"| {model} | `{row['text']}` | {row['exact_bits']:.3f} | "
                f"{row['forward_calls']} | {cells} |"
            )
    return "\n".join(lines)


def lockstep() -> str:
    """Lockstep BPB of the student on Gemma-3's tokenizer, Gemma-3-270m and their ensemble."""
    result = _load("lockstep")
    lines = [
        "| text | bytes | student (SmolLM2 on Gemma-3 tokens) | Gemma-3-270m | **ensemble** | "
        "gain vs best member | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in result["texts"].items():
        student, gemma = (member["bpb"] for member in row["members"])
        best = min(student, gemma)
        ensemble = row["ensemble"]["bpb"]
        lines.append(
            f"| {name} | {row['num_bytes']} | {student:.3f} | {gemma:.3f} | **{ensemble:.3f}** "
            f"| {ensemble - best:+.3f} | {row['seconds']} |"
        )
    lines.append("")
    lines.append(
        f"Student `{result['student']}`, equal weights, mean of probabilities, at most "
        f"{result['bytes_per_text']} bytes per text; wall time {result['wall_seconds']} s."
    )
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {
    "bpb": bpb,
    "beam_error": beam_error,
    "lockstep": lockstep,
}


def main() -> int:
    """`write [--check]`: regenerate results/ensemble.md (or check it is up to date)."""
    return markdown_tables.main(RESULTS / "ensemble.md", TABLES, sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
