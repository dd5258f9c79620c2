"""Metrics for cross-tokenizer models, computed on chunks (the bytes both tokenizations share).

* `BitsPerByte` / `bits_per_byte`: bits per byte on the chunks a model fully scores.
* `ChunkAgreement`: how closely student chunk log-likelihoods follow the teacher's.
* `joint_valid_chunk_mask`: chunks scored on both sides, to compare two models on the same bytes.
"""

from ctd.metrics._chunks import chunk_logprobs_in_bits, joint_valid_chunk_mask, valid_chunk_mask
from ctd.metrics.bits_per_byte import BitsPerByte, bits_per_byte, bits_per_byte_sums
from ctd.metrics.chunk_agreement import ChunkAgreement

__all__ = [
    "BitsPerByte",
    "ChunkAgreement",
    "bits_per_byte",
    "bits_per_byte_sums",
    "chunk_logprobs_in_bits",
    "joint_valid_chunk_mask",
    "valid_chunk_mask",
]
