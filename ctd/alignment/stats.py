"""Per-batch alignment statistics for logging."""

from __future__ import annotations

from typing import Any

__all__ = ["alignment_statistics"]


def alignment_statistics(batch: Any) -> dict[str, float]:
    """Chunks per row, bytes per chunk and the share of tokens inside chunks.

    Args:
        batch: a `CrossTokenizerBatch` (torch tensors).

    Returns:
        Plain floats keyed `align/chunks_per_row`, `align/bytes_per_chunk`,
        `align/teacher_tokens_in_chunks`, `align/student_tokens_in_chunks`.
    """
    num_chunks = batch.num_chunks.sum().item()
    teacher_tokens = batch.teacher_attention_mask.sum().item()
    student_tokens = batch.student_attention_mask.sum().item()
    return {
        "align/chunks_per_row": float(batch.num_chunks.float().mean().item()),
        "align/bytes_per_chunk": float(batch.chunk_num_bytes.sum().item()) / max(num_chunks, 1),
        "align/teacher_tokens_in_chunks": float((batch.teacher_chunk_index >= 0).sum().item())
        / max(teacher_tokens, 1),
        "align/student_tokens_in_chunks": float((batch.student_chunk_index >= 0).sum().item())
        / max(student_tokens, 1),
    }
