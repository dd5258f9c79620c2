"""The task table of `ctd fit`: a task is a schema + a LightningModule + one line here."""

from __future__ import annotations

import difflib

from ctd.config import DistillConfig
from ctd.trainers.drafter import DrafterConfig, check_drafter_config, setup_drafter
from ctd.trainers.multi_distill import (
    MultiDistillConfig,
    check_multi_distill_config,
    setup_multi_distill,
)
from ctd.trainers.task import Task
from ctd.trainers.transfer import check_distill_config, setup_distill

TASKS: dict[str, Task] = {
    "distill": Task(
        DistillConfig,
        setup_distill,
        check_distill_config,
        "tokenizer transfer (mode=transfer) or cross-tokenizer distillation (mode=distill)",
    ),
    "drafter": Task(
        DrafterConfig, setup_drafter, check_drafter_config, "a same-tokenizer drafter (TVD++)"
    ),
    "multi_distill": Task(
        MultiDistillConfig,
        setup_multi_distill,
        check_multi_distill_config,
        "one student from several teachers of different tokenizers (K-way ALM)",
    ),
}


def get_task(name: str) -> Task:
    """The task called `name`.

    Raises:
        ValueError: an unknown task, naming the known ones and the closest.
    """
    if name in TASKS:
        return TASKS[name]
    hint = difflib.get_close_matches(name, list(TASKS), n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ValueError(f"task: {name!r} is not one of {', '.join(TASKS)}{suggestion}")
