"""ctd: cross-tokenizer distillation and ensembling for PyTorch.

Subpackages:
    ctd.alignment: tokens -> exact byte spans -> chunks shared by two tokenizations (no Lightning).
    ctd.losses: ALM family, TVD++ and baselines as pure functions plus thin modules (torch only).
    ctd.models, ctd.data, ctd.trainers: the Hugging Face and Lightning side.

`import ctd` stays light: it imports neither Lightning nor transformers.
"""

__version__ = "0.1.0.dev0"
__all__ = ["__version__"]
