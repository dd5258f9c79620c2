"""Write the tables of results/transplant.md from results/transplant/zero_shot.json.

.venv/bin/python results/summarize_transplant.py > results/transplant_tables.md
"""

from __future__ import annotations

import json
from pathlib import Path

RUNS = Path(__file__).parent / "transplant"


def main() -> None:
    """Print the zero-shot table (markdown) and the run facts."""
    result = json.loads((RUNS / "zero_shot.json").read_text())
    scores = result["scores"]
    sets = list(result["texts"])
    first = next(iter(scores.values()))
    print("| init | " + " | ".join(f"{name} BPB" for name in sets) + " |")
    print("|---|" + "---|" * len(sets))
    base = " | ".join(f"{first[name]['base_bpb']:.3f}" for name in sets)
    print(f"| base model itself (SmolLM2 tokenizer) | {base} |")
    for init, by_set in scores.items():
        cells = " | ".join(f"{by_set[name]['student_bpb']:.3f}" for name in sets)
        print(f"| {init} | {cells} |")
    print()
    texts = ", ".join(
        f"{name}: {t['docs']} docs, {t['bytes']} bytes" for name, t in result["texts"].items()
    )
    print(f"Held-out text: {texts}.")
    print(
        f"Plan: {result['plan']}; unanchored numerals: {len(result['unanchored_numerals'])}; "
        f"candidates: {result['candidates']}; OMP for all k: {result['omp_seconds_all_k']} s; "
        f"plan: {result['plan_seconds']} s; peak RSS {result['peak_rss_mb']} MB."
    )
    residual = ", ".join(f"k={k}: {v:.3f}" for k, v in result["omp_relative_residual"].items())
    print(f"Mean relative donor-space residual ||x - fit|| / ||x||: {residual}.")


if __name__ == "__main__":
    main()
