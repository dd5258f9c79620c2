"""`EnsembleModule`: validate / test / predict an ensemble's bits per byte next to its members'.

Every member and the ensemble are scored on exactly the same bytes of each text (see
`ctd.ensemble.scoring`). With `learn_weights=True`, `fit` on a dev split trains only the
mixture weights (softmax of one logit per member) to minimise the ensemble's bits per byte;
the members stay frozen (their log-probs are computed without gradients). Learning needs the
linear pool (`mean_prob`), whose value per unit is log sum_i w_i p_i(unit): the member log-probs
of the scored units are all it reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ctd.ensemble import TextScores, bits_per_byte_report, normalized_weights

__all__ = ["EnsembleModule", "text_dataloader"]

ScoreTexts = Callable[[list[str]], list[TextScores]]


def text_dataloader(texts: Sequence[str], batch_size: int = 4) -> DataLoader[str]:
    """Batches of raw texts (lists of str) in file order, for `EnsembleModule`."""
    dataset: Any = list(texts)  # a list is a map-style dataset
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=list)


class EnsembleModule(L.LightningModule):
    """Bits per byte of each member and of the ensemble; optionally learns the weights.

    Args:
        score_texts: texts -> per-text unit log-probs, e.g. `functools.partial(score_bytes,
            ByteEnsemble(...))` or `functools.partial(score_lockstep, LockstepEnsemble(...),
            tokenizer)`. The ensemble inside it only matters for `mean_logprob`.
        member_names: one label per member (logged as `<stage>/bpb_<name>`).
        weights: starting mixture weights (uniform when None).
        combine: `mean_prob` (the module pools the member log-probs with its own weights) or
            `mean_logprob` (the scorer's pooled values are used; weights cannot be learned).
        learn_weights: make the weight logits trainable (`Trainer.fit` on a dev split).
        learning_rate: Adam's step size for the weight logits.

    Raises:
        ValueError: bad weights, or learn_weights with `mean_logprob`.
    """

    def __init__(
        self,
        score_texts: ScoreTexts,
        member_names: Sequence[str],
        *,
        weights: Sequence[float] | None = None,
        combine: str = "mean_prob",
        learn_weights: bool = False,
        learning_rate: float = 0.05,
    ) -> None:
        super().__init__()
        if learn_weights and combine != "mean_prob":
            raise ValueError("learn_weights needs combine=mean_prob (a linear pool)")
        start = normalized_weights(weights, len(member_names))
        with torch.no_grad():
            logits = start.clamp_min(1e-12).log().float()
        self.weight_logits = nn.Parameter(logits, requires_grad=learn_weights)
        self.score_texts = score_texts
        self.member_names = list(member_names)
        self.combine = combine
        self.learning_rate = learning_rate
        self._scores: list[TextScores] = []

    @property
    def weights(self) -> Tensor:
        """The current mixture weights. Shapes: (M,) float64, summing to 1."""
        return torch.softmax(self.weight_logits.detach().double(), 0)

    def _pooled(self, scores: TextScores, log_weights: Tensor) -> Tensor:
        """The ensemble's unit log-probs under `log_weights`. Shapes: (M,) -> (N,)."""
        if self.combine != "mean_prob":
            return scores.ensemble_logprobs
        member = scores.member_logprobs.to(log_weights)
        return torch.logsumexp(member + log_weights[:, None], 0)

    def _with_current_weights(self, scores: list[TextScores]) -> list[TextScores]:
        log_weights = self.weights.log()
        return [
            TextScores(item.member_logprobs, self._pooled(item, log_weights), item.num_bytes)
            for item in scores
        ]

    def training_step(self, batch: list[str], batch_idx: int) -> Tensor:
        """Ensemble bits per byte of a dev batch as a function of the weight logits only."""
        with torch.no_grad():
            scores = self.score_texts(batch)
        log_weights = torch.log_softmax(self.weight_logits.double(), 0)
        nll = sum(-self._pooled(item, log_weights).sum() for item in scores)
        num_bytes = sum(item.num_bytes for item in scores)
        loss = nll / (num_bytes * math.log(2.0))
        self.log("train/bpb_ensemble", loss, batch_size=len(batch))
        return loss  # type: ignore[return-value]

    def _collect(self, batch: list[str]) -> None:
        with torch.no_grad():
            self._scores += self.score_texts(batch)

    def _log_bpb(self, stage: str) -> dict[str, float]:
        report = bits_per_byte_report(self._with_current_weights(self._scores))
        self._scores = []
        values = {
            f"{stage}/bpb_{name}": bpb
            for name, bpb in zip(self.member_names, report.member_bpb, strict=True)
        }
        values[f"{stage}/bpb_ensemble"] = report.ensemble_bpb
        values[f"{stage}/num_bytes"] = float(report.num_bytes)
        self.log_dict(values)
        return values

    def validation_step(self, batch: list[str], batch_idx: int) -> None:
        """Score a batch; the figures are logged at the end of the epoch."""
        self._collect(batch)

    def on_validation_epoch_end(self) -> None:
        """Log `val/bpb_<member>`, `val/bpb_ensemble` and `val/num_bytes`."""
        self._log_bpb("val")

    def test_step(self, batch: list[str], batch_idx: int) -> None:
        """Score a batch; the figures are logged at the end of the epoch."""
        self._collect(batch)

    def on_test_epoch_end(self) -> None:
        """Log `test/bpb_<member>`, `test/bpb_ensemble` and `test/num_bytes`."""
        self._log_bpb("test")

    def predict_step(self, batch: list[str], batch_idx: int) -> list[dict[str, Any]]:
        """Per text: its bytes and the bits per byte of every member and of the ensemble."""
        with torch.no_grad():
            scores = self._with_current_weights(self.score_texts(batch))
        results = []
        for item in scores:
            report = bits_per_byte_report([item])
            members = dict(zip(self.member_names, report.member_bpb, strict=True))
            results.append(
                {"num_bytes": item.num_bytes, "members": members, "ensemble": report.ensemble_bpb}
            )
        return results

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam on the weight logits alone (the members are not parameters of this module)."""
        return torch.optim.Adam([self.weight_logits], lr=self.learning_rate)
