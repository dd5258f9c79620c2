"""Plumbing shared by the thin loss modules."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn


class SharedVocabLoss(nn.Module):
    """Thin module over a shared-vocabulary loss function with a `temperature` keyword.

    Subclasses set `loss_fn` (e.g. `staticmethod(forward_kl_loss)`) and a docstring.

    Shapes: student_logits (B, T, V), teacher_logits (B, T, V), mask (B, T) -> ().
    """

    loss_fn: Callable[..., Tensor]

    def __init__(self, *, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(
        self, student_logits: Tensor, teacher_logits: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        """Compute `loss_fn` with the stored temperature."""
        return type(self).loss_fn(
            student_logits, teacher_logits, mask, temperature=self.temperature
        )
