"""Speculative decoding, same- and cross-tokenizer, with the statistics drafters are judged by.

* `speculative_generate`: one prompt, KV caches on both models, speculative sampling
  (Leviathan/Chen rule with the residual distribution) or greedy verification.
* `speculative_verify` / `greedy_verify`: one block's acceptance.
* `SharedVocabulary` / `TokenIntersection`: drafter <-> target ids (TLI across tokenizers).
* Metrics (alpha, tau, MBSU, analytic tau) live in `ctd.metrics.acceptance`.
"""

from ctd.specdec.decode import SpecDecOutput, speculative_generate
from ctd.specdec.verify import RandomSource, TorchRandom, greedy_verify, speculative_verify
from ctd.specdec.vocab import DraftVocabulary, SharedVocabulary, TokenIntersection

__all__ = [
    "DraftVocabulary",
    "RandomSource",
    "SharedVocabulary",
    "SpecDecOutput",
    "TokenIntersection",
    "TorchRandom",
    "greedy_verify",
    "speculative_generate",
    "speculative_verify",
]
