"""ctd.alignment: tokens -> exact byte spans -> chunks shared by two (or K) tokenizations.

numpy + tokenizers only; torch is imported by `batches` (the collated batches) alone, never
Lightning.
"""

from ctd.alignment.align import (
    MODES,
    BatchAlignment,
    BatchMultiAlignment,
    ChunkAlignment,
    MultiChunkAlignment,
    align,
    align_batch,
    align_many,
    align_many_batch,
)
from ctd.alignment.bias import TokenizationBias, token_bias
from ctd.alignment.collate import (
    CrossTokenizerBatch,
    CrossTokenizerCollator,
    MultiTokenizerBatch,
    MultiTokenizerCollator,
)
from ctd.alignment.encode import encode, encode_batch, template_special_ids
from ctd.alignment.ragged import TokenizedBatch, TokenizedText
from ctd.alignment.stats import alignment_statistics
from ctd.alignment.token_bytes import TokenBytes, token_bytes
from ctd.alignment.vocab_map import mined_vocab_map, nearest_by_edit_distance

__all__ = [
    "MODES",
    "BatchAlignment",
    "BatchMultiAlignment",
    "ChunkAlignment",
    "CrossTokenizerBatch",
    "CrossTokenizerCollator",
    "MultiChunkAlignment",
    "MultiTokenizerBatch",
    "MultiTokenizerCollator",
    "TokenBytes",
    "TokenizationBias",
    "TokenizedBatch",
    "TokenizedText",
    "align",
    "align_batch",
    "align_many",
    "align_many_batch",
    "alignment_statistics",
    "encode",
    "encode_batch",
    "mined_vocab_map",
    "nearest_by_edit_distance",
    "template_special_ids",
    "token_bias",
    "token_bytes",
]
