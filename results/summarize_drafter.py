#!/usr/bin/env python3
"""The tables of results/drafter.md, generated from the committed run outputs.

    summarize_drafter.py write            # regenerate every table in results/drafter.md
    summarize_drafter.py write --check    # exit 1 if results/drafter.md is not up to date
    summarize_drafter.py table results/drafter/fit   # print one table

`results/run_drafter.sh` writes the outputs: `results/drafter/fit/<loss>/metrics.json` and
`wall_seconds` (training), `results/drafter/specdec/<drafter>_g<gamma>_t<temperature>.json`
(the last line of `ctd specdec --json`). `write` replaces the lines between each
`<!-- table: DIR -->` and `<!-- end table -->` marker pair with the table of DIR.
"""

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "results" / "drafter.md"
LOSSES = {"tvdpp": "TVD++", "kl": "forward KL", "tvd": "TVD"}
DRAFTERS = {"trimmed4": "untrained (trimmed)", **LOSSES}
MARKER = re.compile(
    r"^<!-- table: (?P<dir>\S+) -->\n.*?^<!-- end table -->$", re.DOTALL | re.MULTILINE
)


def _number(value: object, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def fit_table(folder: Path) -> str:
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


def specdec_table(folder: Path) -> str:
    """Speculative decoding per drafter, gamma and temperature."""
    lines = [
        "| drafter | gamma | T | alpha | tau | analytic tau | cost ratio c | MBSU | tokens/s "
        "| baseline tokens/s | speed-up | = greedy baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for gamma in (3, 5):
        for temperature in (0, 1):
            for drafter, name in DRAFTERS.items():
                path = folder / f"{drafter}_g{gamma}_t{temperature}.json"
                if not path.is_file():
                    continue
                r = json.loads(path.read_text())
                same = {True: "yes", False: "no"}.get(r.get("matches_baseline"), "-")
                lines.append(
                    f"| {name} | {gamma} | {temperature} | {_number(r['alpha'])} "
                    f"| {_number(r['tau'], 2)} | {_number(r.get('analytic_tau'), 2)} "
                    f"| {_number(r['cost_ratio'], 2)} | {_number(r['mbsu'], 2)} "
                    f"| {_number(r['tokens_per_s'], 1)} | {_number(r['baseline_tokens_per_s'], 1)} "
                    f"| {_number(r['speedup'], 2)} | {same} |"
                )
    return "\n".join(lines)


def table(folder: Path) -> str:
    """The table of one output folder (`.../fit` or `.../specdec`)."""
    return fit_table(folder) if folder.name == "fit" else specdec_table(folder)


def render(text: str) -> str:
    """`text` with every marked table regenerated."""

    def replace(match: re.Match[str]) -> str:
        folder = match.group("dir")
        return f"<!-- table: {folder} -->\n{table(REPO / folder)}\n<!-- end table -->"

    return MARKER.sub(replace, text)


def main() -> int:
    """Command line: write [--check] or table DIR."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write")
    write.add_argument("--check", action="store_true")
    show = commands.add_parser("table")
    show.add_argument("folder", type=Path)
    args = parser.parse_args()
    if args.command == "table":
        print(table(args.folder))
        return 0
    current = DOC.read_text()
    updated = render(current)
    if args.check:
        if updated != current:
            print(f"{DOC} is not what the run outputs give; run summarize_drafter.py write")
            return 1
        return 0
    DOC.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
