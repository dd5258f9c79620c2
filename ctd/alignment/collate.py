"""Collation of text or chat examples into padded torch tensors for the losses.

`MultiTokenizerCollator` aligns K >= 2 tokenizations K-way (`align_many_batch`);
`CrossTokenizerCollator` is its teacher/student (K = 2) view. The batches they return, and the
padding into tensors, are in `ctd.alignment.batches` (re-exported here).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ctd.alignment.align import MODES, align_many_batch
from ctd.alignment.batches import (
    CrossTokenizerBatch,
    MultiTokenizerBatch,
    pad_rows,
    padded_batch,
)
from ctd.alignment.bias import TokenizationBias
from ctd.alignment.chat import encode_chat, is_chat
from ctd.alignment.encode import encode_batch_recording
from ctd.alignment.modes import check_pairwise_mode
from ctd.alignment.ragged import TokenizedBatch
from ctd.alignment.token_bytes import token_bytes

__all__ = [
    "CrossTokenizerBatch",
    "CrossTokenizerCollator",
    "MultiTokenizerBatch",
    "MultiTokenizerCollator",
    "pad_rows",
]


def _pad_id(tokenizer: object) -> int:
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return 0


class MultiTokenizerCollator:
    """Examples (str, {"text"}, or {"messages"}) -> `MultiTokenizerBatch` of K tokenizations.

    Args:
        tokenizers: K >= 2 fast tokenizers (transformers ones for chat data), side k = index k.
        max_lengths: per side, truncate its tokens to this many; the trailing partial chunk of
            a truncated row is dropped.
        mode: "unconstrained", "space" or "unbiased" (K = 2 only).
        bias: `TokenizationBias` of (side 0, side 1) or a path to its .npz (mode="unbiased").
        pair_specials: zero-width specials at the same position on every side form a chunk.
        add_special_tokens: add each tokenizer's BOS/EOS template to plain texts.
        loss_roles: chat roles whose content counts in the loss masks.
        on_unmappable: what to do with an example whose tokens cannot be mapped to exact bytes
            on some side (an `<unk>`, bytes the tokenizer drops, a boundary inside a character a
            normalizer changed): "raise" (a ValueError) or "skip" (drop it from the batch with a
            warning naming the reason and the running count `num_skipped`). A batch in which
            every example is unmappable raises a ValueError either way.

    Raises:
        ValueError: fewer than 2 tokenizers, a length per side missing, an unknown mode or
            `on_unmappable`, "unbiased" without bias or with K > 2.
    """

    def __init__(
        self,
        tokenizers: Sequence[object],
        *,
        max_lengths: Sequence[int],
        mode: str = "unconstrained",
        bias: TokenizationBias | str | Path | None = None,
        pair_specials: bool = True,
        add_special_tokens: bool = True,
        loss_roles: Sequence[str] = ("assistant",),
        on_unmappable: str = "raise",
    ) -> None:
        if len(tokenizers) < 2:
            raise ValueError(f"a collator needs at least 2 tokenizers, got {len(tokenizers)}")
        if len(max_lengths) != len(tokenizers):
            raise ValueError(
                f"max_lengths has {len(max_lengths)} entries for {len(tokenizers)} tokenizers"
            )
        if on_unmappable not in ("raise", "skip"):
            raise ValueError(f"on_unmappable must be 'raise' or 'skip', got {on_unmappable!r}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        check_pairwise_mode(mode, len(tokenizers))
        if mode == "unbiased" and bias is None:
            raise ValueError("mode='unbiased' needs bias (see `ctd tokenizer-bias`)")
        self.tokenizers = list(tokenizers)
        self.max_lengths = list(max_lengths)
        self.mode = mode
        self.bias = TokenizationBias.load(bias) if isinstance(bias, (str, Path)) else bias
        self.pair_specials = pair_specials
        self.add_special_tokens = add_special_tokens
        self.loss_roles = set(loss_roles)
        self.token_bytes = [token_bytes(tokenizer) for tokenizer in self.tokenizers]
        self.pad_ids = [_pad_id(tokenizer) for tokenizer in self.tokenizers]
        self.on_unmappable = on_unmappable
        self.num_skipped = 0

    def _encode(
        self, tokenizer: object, examples: list[Any], failures: dict[int, str] | None
    ) -> tuple[TokenizedBatch, npt.NDArray[np.bool_]]:
        if all(is_chat(example) for example in examples) and examples:
            conversations = [example["messages"] for example in examples]
            return encode_chat(tokenizer, conversations, loss_roles=self.loss_roles)
        if any(is_chat(example) for example in examples):
            raise ValueError("a batch mixes chat and plain-text examples")
        texts = [example["text"] if isinstance(example, dict) else example for example in examples]
        batch = encode_batch_recording(
            tokenizer, texts, add_special_tokens=self.add_special_tokens, failures=failures
        )
        return batch, ~batch.is_special

    def _chat_failures(self, examples: list[Any]) -> dict[int, str]:
        """Unmappable chat examples, found one by one (only after the batch failed)."""
        failures: dict[int, str] = {}
        for index, example in enumerate(examples):
            for tokenizer in self.tokenizers:
                try:
                    self._encode(tokenizer, [example], None)
                except ValueError as error:
                    failures.setdefault(index, str(error))
        return failures

    def _encode_sides(
        self, examples: list[Any]
    ) -> tuple[list[TokenizedBatch], list[npt.NDArray[np.bool_]]]:
        """Every side's tokens and loss masks; unmappable examples dropped when skipping."""
        if self.on_unmappable == "raise":
            encoded = [self._encode(tokenizer, examples, None) for tokenizer in self.tokenizers]
            return [batch for batch, _ in encoded], [loss for _, loss in encoded]
        failures: dict[int, str] = {}
        try:
            encoded = [self._encode(tokenizer, examples, failures) for tokenizer in self.tokenizers]
        except ValueError:
            if not (examples and all(is_chat(example) for example in examples)):
                raise
            failures = self._chat_failures(examples)
            if not failures:
                raise
            kept = [example for index, example in enumerate(examples) if index not in failures]
            self._warn_skipped(failures, len(examples))
            return self._encode_sides(kept)
        batches, losses = [batch for batch, _ in encoded], [loss for _, loss in encoded]
        if failures:
            self._warn_skipped(failures, len(examples))
            keep_rows = np.ones(len(examples), dtype=np.bool_)
            keep_rows[list(failures)] = False
            losses = [
                loss[np.repeat(keep_rows, batch.row_lengths)]
                for batch, loss in zip(batches, losses, strict=True)
            ]
            batches = [batch.select(keep_rows) for batch in batches]
        return batches, losses

    def _warn_skipped(self, failures: dict[int, str], batch_size: int) -> None:
        if len(failures) == batch_size:
            reasons = "; ".join(f"example {i}: {failures[i]}" for i in sorted(failures))
            raise ValueError(
                f"every example of this batch ({batch_size}) is unmappable, nothing is left to "
                f"collate: {reasons}"
            )
        for index in sorted(failures):
            self.num_skipped += 1
            warnings.warn(
                f"{type(self).__name__} skipped example {index} of a batch of {batch_size}: "
                f"{failures[index]} ({self.num_skipped} skipped so far)",
                RuntimeWarning,
                stacklevel=5,
            )

    def collate_sides(self, examples: list[Any]) -> MultiTokenizerBatch:
        """Tokenize, align K-way, truncate and pad a list of examples."""
        if not isinstance(examples, list):
            raise TypeError(f"examples must be a list, got {type(examples).__name__}")
        batches, losses = self._encode_sides(examples)
        for side, max_length in enumerate(self.max_lengths):
            keep = _keep_mask(batches[side], max_length)
            losses[side] = losses[side] if keep is None else losses[side][keep]
            batches[side] = batches[side].truncate(max_length)
        alignment = align_many_batch(
            batches,
            mode=self.mode,
            token_bytes=self.token_bytes,
            bias=self.bias,
            pair_specials=self.pair_specials,
        )
        return padded_batch(batches, losses, alignment, self.pad_ids)

    def __call__(self, examples: list[Any]) -> MultiTokenizerBatch:
        """`collate_sides`."""
        return self.collate_sides(examples)


class CrossTokenizerCollator(MultiTokenizerCollator):
    """Examples (str, {"text"}, or {"messages"}) -> `CrossTokenizerBatch` for the losses.

    The teacher/student (K = 2) view of `MultiTokenizerCollator`: side 0 is the teacher.

    Args:
        teacher_tokenizer: the teacher's fast tokenizer (a transformers one for chat data).
        student_tokenizer: the student's fast tokenizer.
        max_teacher_length: truncate teacher tokens to this many.
        max_student_length: truncate student tokens to this many; the trailing partial chunk
            of a truncated pair is dropped.
        **options: `mode`, `bias`, `pair_specials`, `add_special_tokens`, `loss_roles`,
            `on_unmappable`, as in `MultiTokenizerCollator`.
    """

    def __init__(
        self,
        teacher_tokenizer: object,
        student_tokenizer: object,
        *,
        max_teacher_length: int,
        max_student_length: int,
        **options: Any,
    ) -> None:
        super().__init__(
            [teacher_tokenizer, student_tokenizer],
            max_lengths=[max_teacher_length, max_student_length],
            **options,
        )
        self.teacher_tokenizer, self.student_tokenizer = teacher_tokenizer, student_tokenizer
        self.max_teacher_length = max_teacher_length
        self.max_student_length = max_student_length
        self.teacher_token_bytes, self.student_token_bytes = self.token_bytes
        self.teacher_pad_id, self.student_pad_id = self.pad_ids

    def __call__(self, examples: list[Any]) -> CrossTokenizerBatch:  # type: ignore[override]
        """Tokenize, align, truncate and pad a list of examples."""
        return self.collate_sides(examples).pair(0, 1)


def _keep_mask(batch: TokenizedBatch, max_length: int) -> npt.NDArray[np.bool_] | None:
    """Tokens that survive truncation to `max_length`, None for all. Shapes: (M,)."""
    if not np.any(batch.row_lengths > max_length):
        return None
    position = np.arange(len(batch.input_ids)) - batch.row_starts[batch.token_rows]
    return np.asarray(position < max_length)
