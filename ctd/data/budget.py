"""Choose `max_document_bytes` so that documents fit both contexts (little truncation).

The collator truncates each side to its context and drops the trailing partial chunk, so a
document piece should hold at most `max_length` tokens on *both* sides. Bytes per token vary by
tokenizer (about 4 for large English BPEs, 1 for byte-level, ~1.2 for tiny test tokenizers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ctd.data.splitting import split_text

PROBE_BYTES = 1024  # bytes/token is measured on pieces of this size


def _low_bytes_per_token(tokenizer: object, pieces: list[str], quantile: float) -> float:
    from ctd.alignment import encode

    ratios = sorted(
        tokens.num_text_bytes / max(len(tokens.input_ids), 1)
        for tokens in encode(tokenizer, pieces, add_special_tokens=False)
    )
    return ratios[min(int(quantile * len(ratios)), len(ratios) - 1)]


def _num_template_tokens(tokenizer: object) -> int:
    from ctd.alignment import template_special_ids

    before, after = template_special_ids(tokenizer)
    return len(before) + len(after)


def suggest_max_document_bytes(
    teacher_tokenizer: object,
    student_tokenizer: object,
    sample_texts: Sequence[str],
    *,
    max_teacher_length: int,
    max_student_length: int,
    quantile: float = 0.05,
) -> int:
    """A `max_document_bytes` for which most document pieces fit both contexts.

    Measures bytes per token of each tokenizer on 1 KiB pieces of `sample_texts`, takes the
    `quantile` (a low one: dense text), and returns the byte size of the shorter context.

    Args:
        teacher_tokenizer: The teacher's fast tokenizer or `tokenizers.Tokenizer`.
        student_tokenizer: The student's.
        sample_texts: Representative training texts (a few hundred KiB is plenty).
        max_teacher_length: Teacher context in tokens.
        max_student_length: Student context in tokens.
        quantile: Which bytes-per-token quantile to plan for; lower truncates less.

    Raises:
        ValueError: If `sample_texts` hold no text or a context has no room beside BOS/EOS.
    """
    pieces = [p for text in sample_texts for p in split_text(text, PROBE_BYTES) if p.strip()]
    if not pieces:
        raise ValueError("sample_texts hold no text to measure bytes per token on")
    budgets = []
    for tokenizer, max_length in (
        (teacher_tokenizer, max_teacher_length),
        (student_tokenizer, max_student_length),
    ):
        room_tokens = max_length - _num_template_tokens(tokenizer)
        if room_tokens <= 0:
            raise ValueError(f"a context of {max_length} tokens leaves no room beside BOS/EOS")
        budgets.append(room_tokens * _low_bytes_per_token(tokenizer, pieces, quantile))
    return max(math.floor(min(budgets)), 4)
