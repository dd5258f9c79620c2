"""Ensembles of language models: lockstep (one shared tokenizer) and byte level (any tokenizers).

* `LockstepEnsemble`: members that share a tokenizer, one KV cache each; a weighted mean of
  probabilities (default) or of log-probabilities per token; scores and generates (the
  `ctd.decoding.generate` interface).
* `ByteLM`: one model's next-byte distribution (EOS included), marginalised over the
  tokenizations that cover the bytes so far (exact, or a beam); `TokenTree` holds its beam's
  token prefixes in one KV cache (one forward per byte).
* `ByteEnsemble`: the weighted mean of members' next-byte distributions; scores (bits per
  byte) and generates byte by byte.
* `score_lockstep` / `score_bytes` / `bits_per_byte_report`: every member and the ensemble on
  exactly the same bytes.
"""

from ctd.ensemble.byte_ensemble import ByteEnsemble, ByteScores
from ctd.ensemble.byte_lm import EOS_INDEX, ByteLM, ByteLMState, TokenByteTrie, context_ids
from ctd.ensemble.lockstep import LockstepEnsemble, check_shared_tokenizer, combine_logprobs
from ctd.ensemble.scoring import (
    BitsPerByteReport,
    TextScores,
    bits_per_byte_report,
    score_bytes,
    score_lockstep,
)
from ctd.ensemble.token_tree import TokenTree
from ctd.ensemble.weights import COMBINES, check_combine, normalized_weights

__all__ = [
    "COMBINES",
    "EOS_INDEX",
    "BitsPerByteReport",
    "ByteEnsemble",
    "ByteLM",
    "ByteLMState",
    "ByteScores",
    "LockstepEnsemble",
    "TextScores",
    "TokenByteTrie",
    "TokenTree",
    "bits_per_byte_report",
    "check_combine",
    "check_shared_tokenizer",
    "combine_logprobs",
    "context_ids",
    "normalized_weights",
    "score_bytes",
    "score_lockstep",
]
