"""Print the results/transfer.md table from the runs' metrics.json files."""

import json
import sys
from pathlib import Path

METHODS = {"sft": "SFT only", "alm": "ALM", "alm_sft": "ALM + SFT", "uld_sft": "ULD + SFT"}


def main(root: Path) -> None:
    """Print one markdown row per (target, method) run under `root`."""
    print(
        "| target | method | teacher BPB | student BPB before | student BPB after "
        "| after / teacher |"
    )
    print("|---|---|---|---|---|---|")
    for target in ("bytes", "qwen2"):
        for method, label in METHODS.items():
            path = root / target / method / "metrics.json"
            if not path.is_file():
                print(f"| {target} | {label} | (not run) | | | |")
                continue
            metrics = json.loads(path.read_text())
            first = json.loads((root / target / "sft" / "metrics.json").read_text())
            teacher = metrics["val/teacher_bpb"]
            before = first["initial/val/student_bpb"]
            after = metrics["val/student_bpb"]
            print(
                f"| {target} | {label} | {teacher:.3f} | {before:.3f} | {after:.3f} "
                f"| {after / teacher:.3f} |"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/transfer"))
