"""Tiny random causal LMs for the decoding tests (importable by name, unlike a conftest)."""

from __future__ import annotations

import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM


def tiny_llama(vocab_size: int = 48, *, seed: int = 0, layers: int = 2) -> LlamaForCausalLM:
    """A 2-layer Llama with hidden size 32 in float64 (exact comparisons)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).double().eval()


def tiny_gemma3(
    vocab_size: int = 48, *, sliding_window: int = 4, seed: int = 0
) -> Gemma3ForCausalLM:
    """A 2-layer Gemma 3 whose first layer has a tiny sliding window (rollback across it)."""
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=256,
        sliding_window=sliding_window,
        layer_types=["sliding_attention", "full_attention"],
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return Gemma3ForCausalLM(config).double().eval()
