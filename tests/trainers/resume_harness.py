"""Run `ctd fit` (prepare + train) in this process, log each batch's document ids, maybe die.

Used by test_resume.py as a subprocess:

    python resume_harness.py DOC_LOG KILL KILL_STEP override [override ...]

DOC_LOG: a JSON-lines file; every training batch appends {"step", "epoch", "batch_idx", "ids"},
the ids read back from the byte-level student's input ids (a text starts with `doc-NNNN`).
With CTD_TEST_ATTENTION_DROPOUT set, the student's attention dropout is that rate (so the run
draws from the torch RNG at every step).
KILL: `none`, `after_checkpoint` (SIGKILL at the start of the step after global step
KILL_STEP, i.e. right after that step's checkpoint was written) or `mid_step` (SIGKILL between
the backward pass and the optimizer step of the step that follows global step KILL_STEP).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from typing import Any

import lightning as L

from ctd.trainers.fit import load_run_config, prepare, train

DOCUMENT_ID = re.compile(rb"doc-(\d{4})")


class DocumentLog(L.Callback):
    """Append the document ids of each training batch to a file (flushed, survives SIGKILL)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:  # noqa: D102
        ids = []
        for row in batch.student_input_ids.tolist():
            found = DOCUMENT_ID.search(bytes(token for token in row if token < 256))
            ids.append(int(found.group(1)) if found else -1)
        entry = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "batch_idx": batch_idx,
        }
        with open(self.path, "a") as handle:
            handle.write(json.dumps({**entry, "ids": ids}) + "\n")
            handle.flush()


class Killer(L.Callback):
    """SIGKILL this process at a chosen point (see the module docstring)."""

    def __init__(self, when: str, step: int) -> None:
        self.when, self.step = when, step

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:  # noqa: D102
        if self.when == "after_checkpoint" and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:  # noqa: D102
        if self.when == "mid_step" and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    """Run as the module docstring says."""
    doc_log, kill, kill_step, *overrides = argv
    config = load_run_config(overrides=overrides)
    callbacks: list[Any] = [DocumentLog(doc_log)]
    if kill != "none":
        callbacks.append(Killer(kill, int(kill_step)))
    prepared = prepare(config)
    dropout = float(os.environ.get("CTD_TEST_ATTENTION_DROPOUT", "0"))
    for module in prepared.module.modules():
        if hasattr(module, "attention_dropout"):
            module.attention_dropout = dropout
    train(config, prepared, callbacks)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
