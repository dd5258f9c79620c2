"""KV-cached decoding shared by speculative decoding, ensembles and `ctd generate`.

* `CachedModel`: a causal LM + its KV cache with `prefill`, `step`, `rollback`/`truncate`.
* `warp_probs` / `sample`: temperature, top-p and greedy distributions.
* `generate`: plain autoregressive decoding (greedy equals HF `generate`).
"""

from ctd.decoding.cached import CachedModel
from ctd.decoding.generate import eos_ids, generate, next_tokens
from ctd.decoding.sampling import check_sampling_args, sample, warp_probs

__all__ = [
    "CachedModel",
    "check_sampling_args",
    "eos_ids",
    "generate",
    "next_tokens",
    "sample",
    "warp_probs",
]
