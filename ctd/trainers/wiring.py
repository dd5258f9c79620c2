"""The loss-wiring contract: what a loss needs from a forward pass, and how it is called.

A trainer owns one table `name -> LossWiring` (the names are those of `ctd.losses.LOSSES`). Each
entry declares what it reads from the teacher's and the student's forward pass (`Need`) and
whether it reads the batch's chunk alignment; the trainer computes exactly the union of what its
configured losses need (no teacher forward at all when no loss reads the teacher, no (B, T, V)
logits unless a loss declares `Need.LOGITS`). Reading a tensor that was not declared is an
error, so a table whose declarations are incomplete fails its contract test.
"""

from __future__ import annotations

import difflib
import enum
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ctd.config import LossConfig
from ctd.losses import LOSSES


class Need(enum.Enum):
    """One tensor of a side's forward pass that a loss can read."""

    TOKEN_LOGPROBS = "token_logprobs"
    """(B, T): log p(x_t | x_<t), from the memory-bounded chunked head."""
    SPACE_LOGPROBS = "space_logprobs"
    """(B, T): log P(next token is space-like or special | x_<=t)."""
    EOS_LOGPROBS = "eos_logprobs"
    """(B, T): log P(next token is EOS | x_<=t)."""
    HIDDEN = "hidden"
    """(B, T, d): the last hidden state."""
    LOGITS = "logits"
    """(B, T, V): the full next-token logits (memory-heavy)."""
    EMBEDDINGS = "embeddings"
    """(V, d) input and output embedding matrices (`input_embeddings`, `output_embeddings`)."""


HEAD_NEEDS = frozenset({Need.TOKEN_LOGPROBS, Need.SPACE_LOGPROBS, Need.EOS_LOGPROBS})
"""Needs served by one pass of the chunked head."""


class SideOutputs:
    """What one side's forward pass computed, readable only for what was asked for.

    Shapes:
        input_ids (B, T); the tensors as documented on `Need`.
    """

    def __init__(self, input_ids: Tensor, values: Mapping[Need, Tensor | tuple[Tensor, Tensor]]):
        self.input_ids = input_ids
        self._values = dict(values)

    def computed(self) -> dict[Need, Tensor | tuple[Tensor, Tensor]]:
        """Everything this side computed, by need (e.g. for a NaN check)."""
        return dict(self._values)

    def __getitem__(self, need: Need) -> Any:
        if need not in self._values:
            raise KeyError(
                f"{need.value} was not computed for this side: the loss wiring must declare "
                f"Need.{need.name}"
            )
        return self._values[need]


Batch = Any
"""The trainer's batch type (`CrossTokenizerBatch` for distillation)."""

WiringCall = Callable[[nn.Module, Batch, SideOutputs, SideOutputs], Tensor]
"""(loss module, batch, teacher outputs, student outputs) -> scalar loss."""


@dataclass(frozen=True)
class LossWiring:
    """How one registered loss is fed.

    Args:
        call: calls the loss module on the batch and both sides' outputs.
        student_needs: what `call` reads from the student's forward pass.
        teacher_needs: what `call` reads from the teacher's (empty: no teacher forward needed).
        uses_chunks: whether `call` reads the batch's chunk alignment (chunk indices, bytes).
        setup: extra constructor arguments the trainer derives at set-up (e.g. `student_dim`,
            a vocabulary map), by name; each must be a constructor parameter of the loss.
    """

    call: WiringCall
    student_needs: frozenset[Need]
    teacher_needs: frozenset[Need] = frozenset()
    uses_chunks: bool = False
    setup: frozenset[str] = field(default_factory=frozenset)


WiringTable = Mapping[str, LossWiring]


def side_needs(table: WiringTable, names: Iterable[str]) -> tuple[frozenset[Need], frozenset[Need]]:
    """(teacher needs, student needs): the union over the configured losses."""
    teacher: set[Need] = set()
    student: set[Need] = set()
    for name in names:
        teacher |= table[name].teacher_needs
        student |= table[name].student_needs
    return frozenset(teacher), frozenset(student)


def compute_losses(
    table: WiringTable,
    losses: Mapping[str, nn.Module] | nn.ModuleDict,
    batch: Batch,
    teacher: SideOutputs,
    student: SideOutputs,
) -> dict[str, Tensor]:
    """Every configured loss on one batch, by registry name."""
    return {name: table[name].call(loss, batch, teacher, student) for name, loss in losses.items()}


def check_loss_names(names: list[str], table: WiringTable, task: str) -> None:
    """Fail on an unknown, unwired or repeated loss name, with a suggestion.

    Raises:
        ValueError: naming the loss, the closest known name, and what this task accepts.
    """
    if not names:
        raise ValueError("losses: at least one loss is needed")
    for name in names:
        if name not in LOSSES:
            hint = difflib.get_close_matches(name, list(LOSSES), n=1)
            suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"unknown loss {name!r}.{suggestion} Known: {sorted(LOSSES)}")
        if name not in table:
            raise ValueError(
                f"loss {name!r} is not trained by task {task!r} (it takes {sorted(table)}); "
                f"call ctd.losses.{LOSSES[name].__name__} from your own loop"
            )
        if names.count(name) > 1:
            raise ValueError(f"loss {name!r} is listed twice")


def check_losses(configs: list[LossConfig], table: WiringTable, task: str) -> None:
    """Names and constructor arguments of the configured losses, before any model is loaded."""
    check_loss_names([loss.name for loss in configs], table, task)
    for loss in configs:
        check_loss_kwargs(loss.name, loss.kwargs, table)


def constructor_arguments(name: str) -> set[str]:
    """The keyword arguments a registered loss module accepts."""
    return set(inspect.signature(LOSSES[name].__init__).parameters) - {"self"}


def check_loss_kwargs(name: str, kwargs: Mapping[str, Any], table: WiringTable) -> None:
    """Fail on a constructor argument the loss does not take, or one the trainer sets itself."""
    accepted = constructor_arguments(name) - table[name].setup
    unknown = set(kwargs) - accepted
    if unknown:
        raise ValueError(
            f"loss {name!r}: unknown argument(s) {sorted(unknown)}; accepted: {sorted(accepted)}"
        )


def build_loss_modules(
    specs: Iterable[tuple[str, Mapping[str, Any]]],
    table: WiringTable,
    setup_values: Mapping[str, Any],
) -> dict[str, nn.Module]:
    """Instantiate each `(name, kwargs)`, adding the set-up values its wiring declares."""
    modules: dict[str, nn.Module] = {}
    for name, kwargs in specs:
        check_loss_kwargs(name, kwargs, table)
        derived = {key: setup_values[key] for key in table[name].setup}
        modules[name] = LOSSES[name](**derived, **kwargs)
    return modules


def prediction_mask(loss_mask: Tensor) -> Tensor:
    """Positions whose next token counts: logits at t predict token t + 1. Shapes: (B, T)."""
    shifted = loss_mask.new_zeros(loss_mask.shape)
    shifted[:, :-1] = loss_mask[:, 1:]
    return shifted


def stack_weighted(values: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """sum_i w_i * loss_i."""
    return torch.stack([weights[name] * value for name, value in values.items()]).sum()
