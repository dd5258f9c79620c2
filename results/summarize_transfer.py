#!/usr/bin/env python3
"""The tables of results/transfer.md, generated from the committed run outputs.

    summarize_transfer.py collect runs/transfer results/transfer  # copy a run set's small outputs
    summarize_transfer.py write                # regenerate every table in results/transfer.md
    summarize_transfer.py write --check        # exit 1 if results/transfer.md is not up to date
    summarize_transfer.py table results/transfer   # print one table

`collect` copies, per run, `metrics.json`, `config.yaml`, the CSV log (`metrics.csv`), the
console output (`run.log`) and `wall_seconds` (written by `run_transfer.sh`), never checkpoints
or exports. `write` replaces
the lines between each `<!-- table: DIR -->` and `<!-- end table -->` marker pair of the
markdown file with the table of DIR (relative to the repository root; results/markdown_tables.py),
so rerunning it reproduces the file byte for byte.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import markdown_tables
import transfer_equal_tables

REPO = Path(__file__).resolve().parent.parent
TARGETS = ("bytes", "qwen2")
METHODS = {"sft": "SFT only", "alm": "ALM", "alm_sft": "ALM + SFT", "uld_sft": "ULD + SFT"}
RUN_FILES = ("metrics.json", "config.yaml", "wall_seconds")
HEADER = (
    "| target | method | teacher BPB | student BPB before | student BPB after | after / teacher "
    "| chunk \\|diff\\| bits/byte | chunks within 1 bit | wall min |\n"
    "|---|---|---|---|---|---|---|---|---|"
)
# (column, metrics.json key, best = min or max): the best value per target is set in bold.
SCORED = (
    ("after", "val/student_bpb", min),
    ("abs_diff", "val/abs_diff_bits_per_byte", min),
    ("within", "val/within_one_bit", max),
)


def collect(runs: Path, dest: Path) -> None:
    """Copy the small outputs of every finished run under `runs` to `dest/<target>/<method>/`."""
    for target in TARGETS:
        for method in METHODS:
            run = runs / target / method
            if not (run / "metrics.json").is_file():
                continue
            out = dest / target / method
            out.mkdir(parents=True, exist_ok=True)
            for name in RUN_FILES:
                if (run / name).is_file():
                    shutil.copyfile(run / name, out / name)
            log = run.with_name(f"{method}.log")  # what `ctd fit` printed
            if log.is_file():
                shutil.copyfile(log, out / "run.log")
            csv = sorted(run.glob("csv/version_*/metrics.csv"))
            if csv:
                shutil.copyfile(csv[-1], out / "metrics.csv")


def _load(path: Path) -> dict[str, float] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _bold(text: str, bold: bool) -> str:
    return f"**{text}**" if bold else text


def table(root: Path) -> str:
    """The markdown table of the run set under `root` (one row per target and method)."""
    rows = [HEADER]
    for target in TARGETS:
        runs = {m: _load(root / target / m / "metrics.json") for m in METHODS}
        done = {m: v for m, v in runs.items() if v is not None}
        # The untrained student is the same for every method; the SFT run validates it.
        initial = done.get("sft", {}).get("initial/val/student_bpb")
        best = {col: pick(v[key] for v in done.values()) for col, key, pick in SCORED if done}
        for method, label in METHODS.items():
            metrics = runs[method]
            if metrics is None:
                rows.append(f"| {target} | {label} | not run |{' - |' * 6}")
                continue
            value = {col: metrics[key] for col, key, _ in SCORED}
            cell = {
                col: _bold(f"{v:.3f}", v == best[col] and len(done) > 1) for col, v in value.items()
            }
            teacher = metrics["val/teacher_bpb"]
            wall = root / target / method / "wall_seconds"
            minutes = f"{int(wall.read_text()) / 60:.1f}" if wall.is_file() else "-"
            before = f"{initial:.3f}" if initial is not None else "-"
            rows.append(
                f"| {target} | {label} | {teacher:.3f} | {before} | {cell['after']} "
                f"| {value['after'] / teacher:.3f} | {cell['abs_diff']} | {cell['within']} "
                f"| {minutes} |"
            )
    return "\n".join(rows)


ZERO_SHOT_MODELS = {
    "teacher": "teacher (SmolLM2-135M-Instruct)",
    "fvt_qwen2": "FVT -> Qwen2 tokenizer, untrained",
    "fvt_bytes": "FVT -> bytes, untrained",
}
ZERO_SHOT_TASKS = {
    "piqa": "PIQA",
    "arc_easy": "ARC-Easy",
    "hellaswag": "HellaSwag",
    "lambada": "LAMBADA",
}


def zero_shot_table(root: Path) -> str:
    """The zero-shot table: one row per `ctd evaluate --json` output (`root/<model>.json`).

    Accuracy per task (acc / acc_per_byte; LAMBADA: greedy acc), their mean, and the mean as a
    share of the teacher's.
    """
    reports = {m: _load(root / f"{m}.json") for m in ZERO_SHOT_MODELS}
    head = " | ".join(f"{label} acc / per byte" for label in ZERO_SHOT_TASKS.values())
    rows = [
        f"| model | {head} | mean acc | % of teacher | questions per task |",
        "|---|" + "---|" * (len(ZERO_SHOT_TASKS) + 3),
    ]
    teacher_mean = None
    for model, label in ZERO_SHOT_MODELS.items():
        report = reports[model]
        if report is None:
            rows.append(f"| {label} | not run |" + " - |" * (len(ZERO_SHOT_TASKS) + 2))
            continue
        tasks = [report["tasks"][name] for name in ZERO_SHOT_TASKS]
        cells = [
            f"{t['acc']:.1%}"
            + (f" / {t['acc_per_byte']:.1%}" if t["acc_per_byte"] is not None else "")
            for t in tasks
        ]
        mean = sum(t["acc"] for t in tasks) / len(tasks)
        teacher_mean = mean if model == "teacher" else teacher_mean
        kept = f"{mean / teacher_mean:.1%}" if teacher_mean else "-"
        counts = "/".join(str(n) for n in sorted({t["num_questions"] for t in tasks}))
        rows.append(f"| {label} | {' | '.join(cells)} | {mean:.1%} | {kept} | {counts} |")
    return "\n".join(rows)


def run_set_table(name: str) -> str:
    """The table of marker NAME: the run set in directory NAME (zero-shot under downstream/).

    `results/transfer_equal/KIND`: the equal-budget table KIND (results/transfer_equal_tables.py).
    """
    folder, _, kind = name.rpartition("/")
    if folder == "results/transfer_equal":
        return transfer_equal_tables.table(REPO / folder, kind)
    make = zero_shot_table if name.startswith("results/downstream/") else table
    return make(REPO / name)


def main(argv: list[str]) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("collect", help="copy a run set's small outputs into results/")
    p.add_argument("runs", type=Path)
    p.add_argument("dest", type=Path)
    p = commands.add_parser("write", help="regenerate the tables of a markdown file")
    p.add_argument("markdown", type=Path, nargs="?", default=REPO / "results" / "transfer.md")
    p.add_argument("--check", action="store_true", help="only check that it is up to date")
    p = commands.add_parser("table", help="print the table of one run set")
    p.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(args.runs, args.dest)
    elif args.command == "table":
        print(table(args.root))
    else:
        return markdown_tables.write(args.markdown, run_set_table, check=args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
