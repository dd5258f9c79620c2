"""ctd.evaluation: scoring models, apart from training (torch + torchmetrics, no Lightning)."""

from ctd.evaluation.paired import PairedEvaluation

__all__ = ["PairedEvaluation"]
