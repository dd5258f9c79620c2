"""Run `ctd fit` in this process (and, under `trainer.strategy=ddp`, Lightning's other ranks).

    python ddp_harness.py OUT_DIR override [override ...]

Every rank writes OUT_DIR/rank<R>.pt: its loss of each step (before backward), the student's
gradients of the first step as the optimizer sees them (after DDP's all-reduce), the document
ids of its batches (read from the byte-level student's ids; texts start `doc-NNNN`), the final
validation metrics and the student's final weights.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ctd.trainers.fit import load_run_config, prepare, train

DOCUMENT_ID = re.compile(rb"doc-(\d{4})")


class Recorder(L.Callback):
    """Collect what the module docstring lists; write it at the end of training."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.record: dict[str, Any] = {"losses": [], "ids": [], "gradients": {}}

    def on_train_batch_start(  # noqa: D102
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        for row in batch.student_input_ids.tolist():
            found = DOCUMENT_ID.search(bytes(token for token in row if token < 256))
            self.record["ids"].append(int(found.group(1)) if found else -1)

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: torch.Tensor) -> None:  # noqa: D102
        self.record["losses"].append(float(loss.detach()))

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:  # noqa: D102
        if trainer.global_step == 0:
            self.record["gradients"] = {
                name: p.grad.detach().clone()
                for name, p in pl_module.student.named_parameters()
                if p.grad is not None
            }

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:  # noqa: D102
        self.record["metrics"] = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")
        }
        self.record["weights"] = {k: v.clone() for k, v in pl_module.student.state_dict().items()}
        self.record["world_size"] = trainer.world_size
        torch.save(self.record, self.out_dir / f"rank{trainer.global_rank}.pt")


def main(argv: list[str]) -> int:
    """Run as the module docstring says."""
    out_dir, *overrides = argv
    config = load_run_config(overrides=overrides)
    train(config, prepare(config), [Recorder(Path(out_dir))])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
