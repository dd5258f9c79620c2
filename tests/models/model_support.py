"""Helpers shared by the model tests (importable by name, unlike a conftest)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM


def tiny_llama(
    vocab_size: int, *, tied: bool, seed: int = 0, num_layers: int = 2
) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=tied,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


def numpy_omp(target: np.ndarray, atoms: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    """Textbook OMP for one target: pick by |<unit atom, residual>|, refit by lstsq."""
    unit = atoms / np.linalg.norm(atoms, axis=1, keepdims=True)
    residual, support = target.copy(), []
    coefficients = np.zeros(0)
    for _ in range(k):
        scores = np.abs(unit @ residual)
        scores[support] = -1.0
        support.append(int(scores.argmax()))
        coefficients = np.linalg.lstsq(atoms[support].T, target, rcond=None)[0]
        residual = target - atoms[support].T @ coefficients
    return support, coefficients
