"""ctd.losses: ALM, TVD++ and baselines as pure functions on tensors plus thin modules (torch only).

``LOSSES`` maps the short names used by configs to the loss modules.
"""

from torch import nn

from ctd.losses.alm import ALMLoss, alm_loss, merge_chunks_by_space_prob
from ctd.losses.alm_divergences import ALM_DIVERGENCES
from ctd.losses.chunks import (
    ChunkLogprobs,
    chunk_last_token,
    chunk_logprobs,
    gather_chunk_ends,
    infer_num_chunks,
)
from ctd.losses.token_logprobs import (
    TokenLogprobs,
    token_logprobs,
    token_logprobs_from_hidden,
    token_logprobs_from_logits,
)

LOSSES: dict[str, type[nn.Module]] = {
    "alm": ALMLoss,
}

__all__ = [
    "ALM_DIVERGENCES",
    "LOSSES",
    "ALMLoss",
    "ChunkLogprobs",
    "TokenLogprobs",
    "alm_loss",
    "chunk_last_token",
    "chunk_logprobs",
    "gather_chunk_ends",
    "infer_num_chunks",
    "merge_chunks_by_space_prob",
    "token_logprobs",
    "token_logprobs_from_hidden",
    "token_logprobs_from_logits",
]
