"""Write the tables of results/ensemble.md from the committed outputs in results/ensemble/.

    .venv/bin/python results/summarize_ensemble.py write            # regenerate the tables
    .venv/bin/python results/summarize_ensemble.py write --check    # exit 1 if out of date

Each `<!-- table: NAME -->` ... `<!-- end table -->` block is replaced by the table NAME: `bpb`
(results/ensemble_bpb.py -> bpb.json), `windows_gap` (results/ensemble_bpb.py --window-bytes ->
windows_gap.json, windows_gap_no_warmup.json, against bpb.json), `bpb_windows`
(results/ensemble_bpb.py --window-bytes -> bpb_windows.json), `beam_error`
(results/ensemble_bpb.py --exact -> beam_error.json), `lockstep` (results/ensemble_bpb.py
--lockstep -> lockstep.json), `learned_weights` (results/ensemble_learned_weights.py ->
learned_weights.json), and the multiple-choice accuracy tables `mc_lockstep` and `mc_bytes`
(results/ensemble_mc.py -> mc_lockstep.json, mc_bytes.json). Accuracies are recomputed from the
per-question choice log-probs (and checked against the recorded figures); the standard errors are
those of a proportion over the questions scored, sqrt(p (1 - p) / n), and for the ensemble's gain
over its better member the paired one, std(d) / sqrt(n), d = correct(ensemble) - correct(member).
"""

from __future__ import annotations

import json
import math
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


def _member_bpb_rows(result: dict[str, Any], extra: str) -> list[str]:
    """The table body of a BPB result: one line per language (a caller may append cells).

    Cells: bytes, the row's `extra` value (none if ""), both members' byte-level BPB, the
    ensemble's, its gain over the better member and both canonical BPBs.
    """
    lines = []
    for language, row in result["languages"].items():
        smol, gemma = row["members"]["smollm2"], row["members"]["gemma3"]
        best = min(smol["byte_bpb"], gemma["byte_bpb"])
        middle = f" {row[extra]} |" if extra else ""
        lines.append(
            f"| {language} | {row['num_bytes']} |{middle} {smol['byte_bpb']:.3f} | "
            f"{gemma['byte_bpb']:.3f} | **{row['ensemble_bpb']:.3f}** | "
            f"{row['ensemble_bpb'] - best:+.3f} | {smol['canonical_bpb']:.3f} | "
            f"{gemma['canonical_bpb']:.3f} |"
        )
    return lines


BPB_COLUMNS = (
    "SmolLM2 byte-level | Gemma-3 byte-level | **ensemble** | gain vs best member | "
    "SmolLM2 canonical | Gemma-3 canonical"
)


def bpb() -> str:
    """Byte-level BPB of each member and of the ensemble per language, same bytes."""
    result = _load("bpb")
    lines = [f"| text | bytes | {BPB_COLUMNS} | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    seconds = [row["seconds"] for row in result["languages"].values()]
    lines += [
        f"{line} {value} |"
        for line, value in zip(_member_bpb_rows(result, ""), seconds, strict=True)
    ]
    lines.append("")
    lines.append(
        f"Beam width {result['beam']}, weights {result['weights']}, "
        f"{result['bytes_per_language']} bytes per language; wall time {result['wall_seconds']} s."
    )
    return "\n".join(lines)


def windows_gap() -> str:
    """Windowed BPB minus one-beam BPB on the same passages, without and with the warm-up."""
    whole = _load("bpb")
    plain, warm = _load("windows_gap_no_warmup"), _load("windows_gap")
    columns = [("smollm2", "SmolLM2"), ("gemma3", "Gemma-3"), (None, "ensemble")]
    header = "| text | bytes | windows | " + " | ".join(
        f"{label}: one beam | windows - one beam, warm-up {plain['warmup_bytes']} / "
        f"{warm['warmup_bytes']}" for _, label in columns) + " |"  # fmt: skip
    lines = [header, "|---|---|---|" + "---|---|" * len(columns)]

    def value(result: dict[str, Any], language: str, name: str | None) -> float:
        row = result["languages"][language]
        return float(row["ensemble_bpb"] if name is None else row["members"][name]["byte_bpb"])

    for language, row in whole["languages"].items():
        cells = []
        for name, _ in columns:
            base = value(whole, language, name)
            cells.append(
                f"{base:.3f} | {value(plain, language, name) - base:+.3f} / "
                f"{value(warm, language, name) - base:+.3f}"
            )
        windows = warm["languages"][language]["num_windows"]
        lines.append(f"| {language} | {row['num_bytes']} | {windows} | " + " | ".join(cells) + " |")
    one_beam_seconds = sum(row["seconds"] for row in whole["languages"].values())
    lines.append("")
    lines.append(
        f"Beam width {warm['beam']}, windows of at most {warm['window_bytes']} bytes; scoring "
        f"time for all five passages: one beam each {one_beam_seconds:.1f} s, windows "
        f"{plain['scoring_seconds']} s (warm-up {plain['warmup_bytes']}) / "
        f"{warm['scoring_seconds']} s (warm-up {warm['warmup_bytes']})."
    )
    return "\n".join(lines)


def bpb_windows() -> str:
    """Byte-level BPB of each member and the ensemble on long passages, scored in windows."""
    result = _load("bpb_windows")
    lines = [f"| text | bytes | windows | {BPB_COLUMNS} |", "|---|---|---|---|---|---|---|---|---|"]
    lines += _member_bpb_rows(result, "num_windows")
    calls = ", ".join(f"{name} {count}" for name, count in result["forward_calls"].items())
    lines.append("")
    lines.append(
        f"Beam width {result['beam']}, weights {result['weights']}, windows of at most "
        f"{result['window_bytes']} bytes (warm-up {result['warmup_bytes']}), "
        f"{result['bytes_per_language']} bytes per language; scoring "
        f"{result['scoring_seconds']} s for all, forwards per member: {calls}; wall time "
        f"{result['wall_seconds']} s."
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


def _correct(logprobs: list[float], gold: int) -> int:
    """1 when the gold choice has the highest log-prob (ties: the first, as `task_result`)."""
    best = max(range(len(logprobs)), key=lambda i: (logprobs[i], -i))
    return int(best == gold)


def _standard_error(values: list[int]) -> float:
    """The standard error of the mean of `values` (population variance, as for a proportion)."""
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / len(values) / len(values))


def _mc_rows(result: dict[str, Any], names: list[str]) -> list[str]:
    """One row per task: each member's and the ensemble's acc (± SE), the gain, acc_per_byte."""
    rows = []
    for task, row in result["tasks"].items():
        questions = row["questions"]
        correct = [
            [_correct(q["member_logprobs"][i], q["gold"]) for q in questions]
            for i in range(len(names))
        ]
        correct.append([_correct(q["ensemble_logprobs"], q["gold"]) for q in questions])
        recorded = [row["members"][name]["acc"] for name in names] + [row["ensemble"]["acc"]]
        accs = [sum(values) / len(values) for values in correct]
        if any(abs(a - b) > 1e-12 for a, b in zip(accs, recorded, strict=True)):
            raise SystemExit(f"{task}: accuracies {accs} differ from the recorded {recorded}")
        better = max(range(len(names)), key=lambda i: accs[i])
        gain = [e - m for e, m in zip(correct[-1], correct[better], strict=True)]
        cells = [
            f"{acc:.3f} ± {_standard_error(v):.3f}" for acc, v in zip(accs, correct, strict=True)
        ]
        per_byte = [row["members"][name]["acc_per_byte"] for name in names]
        per_byte.append(row["ensemble"]["acc_per_byte"])
        rows.append(
            f"| {task} | {len(questions)} | {' | '.join(cells[:-1])} | **{cells[-1]}** | "
            f"{sum(gain) / len(gain):+.3f} ± {_standard_error(gain):.3f} ({names[better]}) | "
            f"{' / '.join(f'{value:.3f}' for value in per_byte)} | {row['cpu_seconds']} |"
        )
    return rows


def _mc_table(name: str, names: list[str], labels: list[str]) -> str:
    result = _load(name)
    lines = [
        "| task | questions | "
        + " | ".join(f"{label} acc" for label in labels)
        + " | **ensemble acc** | ensemble - better member | acc_per_byte ("
        + " / ".join([*labels, "ensemble"])
        + ") | CPU seconds |",
        "|---|---|" + "---|" * (len(labels) + 4),
    ]
    return "\n".join([*lines, *_mc_rows(result, names)])


def mc_lockstep() -> str:
    """Accuracy of the student on Gemma-3 tokens, Gemma-3-270m and their lockstep ensemble."""
    table = _mc_table("mc_lockstep", ["student", "gemma3"], ["student", "Gemma-3-270m"])
    result = _load("mc_lockstep")
    counts = [len(task["questions"]) for task in result["tasks"].values()]
    if len(counts) == 2 and min(counts) == result["limit"]:  # both tasks, complete
        scored = f"the first {result['limit']} questions of each task"
    else:
        scored = (
            f"the first questions of each task (at most {result['limit']}) scored before the "
            "run stopped; a task missing from the table was not reached"
        )
    return (
        f"{table}\n\nStudent `{result['student']}`, equal weights, mean of probabilities, "
        f"requests with Gemma-3's BOS; {scored}; {result['cpu_seconds']} s of CPU in all."
    )


def mc_bytes() -> str:
    """Accuracy of SmolLM2, Gemma-3 and their byte-level ensemble on the same questions."""
    table = _mc_table("mc_bytes", ["smollm2", "gemma3"], ["SmolLM2 bytes", "Gemma-3 bytes"])
    result = _load("mc_bytes")
    return (
        f"{table}\n\nBeam width {result['beam']}, equal weights, context as each member's "
        f'tokens (`context="{result["context"]}"`); the first questions of each task scored '
        f"before the run stopped, {result['cpu_seconds']} s of CPU in all (budget "
        f"{result['cpu_budget_seconds']:.0f} s); a task missing from the table was not reached."
    )


def learned_weights() -> str:
    """Lockstep BPB with equal and with learned weights (EnsembleModule on a dev text)."""
    result = _load("learned_weights")
    lines = [
        "| text | test bytes | dev bytes | student | Gemma-3-270m | ensemble, equal weights | "
        "learned weights (student, Gemma-3) | **ensemble, learned** | learned - best member |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["texts"].items():
        equal, learned = row["equal"], row["learned"]
        best = min(equal["bpb_student"], equal["bpb_gemma3"])
        weights = ", ".join(f"{weight:.3f}" for weight in row["learned_weights"])
        lines.append(
            f"| {name} | {row['test_bytes']} | {row['dev_bytes']} | {equal['bpb_student']:.3f} "
            f"| {equal['bpb_gemma3']:.3f} | {equal['bpb_ensemble']:.3f} | {weights} "
            f"| **{learned['bpb_ensemble']:.3f}** | {learned['bpb_ensemble'] - best:+.3f} |"
        )
    settings = result["settings"]
    lines.append("")
    lines.append(
        f"Student `{result['student']}`; weights learned by Adam (lr {settings['lr']}) on the "
        f"weight logits for {settings['epochs']} epochs over the dev text in documents of "
        f"{settings['document_bytes']} bytes; wall time {result['wall_seconds']} s."
    )
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {
    "bpb": bpb,
    "windows_gap": windows_gap,
    "bpb_windows": bpb_windows,
    "beam_error": beam_error,
    "lockstep": lockstep,
    "learned_weights": learned_weights,
    "mc_lockstep": mc_lockstep,
    "mc_bytes": mc_bytes,
}


def main() -> int:
    """`write [--check]`: regenerate results/ensemble.md (or check it is up to date)."""
    return markdown_tables.main(RESULTS / "ensemble.md", TABLES, sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
