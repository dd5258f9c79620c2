"""ctd.losses: ALM, TVD++ and baselines as pure functions on tensors plus thin modules (torch only).

``LOSSES`` maps the short names used by configs to the loss modules.

Argument order, the same for every loss function and module ``forward``: the student's tensor
first, the teacher's second (for TVD++ the draft, ``draft_logits``, is the student and the target
the teacher; DSKD takes one ``DSKDSide`` per model in the same order). Everything whose two sides
could be swapped without a shape error (chunk indices, per-side masks, MinED's ids and map) is
keyword-only and named ``student_*`` / ``teacher_*``; a single shared ``mask`` may stay
positional. Losses are asymmetric, so a swapped call would otherwise train toward the wrong model.
Module hyperparameters are keyword-only in ``__init__``.
"""

from torch import nn

from ctd.losses.alm import ALMLoss, alm_loss, merge_chunks_by_space_prob
from ctd.losses.alm_divergences import ALM_DIVERGENCES
from ctd.losses.alm_latents import ALMLatentsLoss, alm_latents_loss
from ctd.losses.chunks import (
    ChunkLogprobs,
    chunk_last_token,
    chunk_logprobs,
    gather_chunk_ends,
    infer_num_chunks,
)
from ctd.losses.dskd import DSKDLoss, DSKDProjections, DSKDSide, dskd_loss
from ctd.losses.gradmag import approx_gradmag_preserve_mag
from ctd.losses.jsd import JSDLoss, generalized_jsd_loss
from ctd.losses.kl import KLLoss, ReverseKLLoss, forward_kl_loss, reverse_kl_loss
from ctd.losses.mined import MinEDLoss, mined_loss
from ctd.losses.sft import SFTLoss, sft_loss
from ctd.losses.token_logprobs import (
    TokenLogprobs,
    token_logprobs,
    token_logprobs_from_hidden,
    token_logprobs_from_logits,
)
from ctd.losses.tvd import TVDLoss, tvd_loss
from ctd.losses.tvdpp import TVDPP_NORMALIZATIONS, TVDPPLoss, tvdpp_loss
from ctd.losses.tvdpp_from_hidden import tvdpp_loss_from_hidden
from ctd.losses.uld import ULDLoss, uld_loss

LOSSES: dict[str, type[nn.Module]] = {
    "alm": ALMLoss,
    "alm_latents": ALMLatentsLoss,
    "sft": SFTLoss,
    "kl": KLLoss,
    "reverse_kl": ReverseKLLoss,
    "jsd": JSDLoss,
    "tvd": TVDLoss,
    "uld": ULDLoss,
    "dskd": DSKDLoss,
    "mined": MinEDLoss,
    "tvdpp": TVDPPLoss,
}

__all__ = [
    "ALM_DIVERGENCES",
    "LOSSES",
    "TVDPP_NORMALIZATIONS",
    "ALMLatentsLoss",
    "DSKDLoss",
    "DSKDProjections",
    "DSKDSide",
    "MinEDLoss",
    "ULDLoss",
    "dskd_loss",
    "mined_loss",
    "uld_loss",
    "ALMLoss",
    "JSDLoss",
    "KLLoss",
    "ReverseKLLoss",
    "SFTLoss",
    "TVDLoss",
    "TVDPPLoss",
    "alm_latents_loss",
    "approx_gradmag_preserve_mag",
    "forward_kl_loss",
    "generalized_jsd_loss",
    "reverse_kl_loss",
    "sft_loss",
    "tvd_loss",
    "tvdpp_loss",
    "tvdpp_loss_from_hidden",
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
