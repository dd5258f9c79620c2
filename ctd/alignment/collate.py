"""Collation of text or chat examples into padded torch tensors for the losses.

The only module of ctd.alignment that imports torch. Chunk membership is sparse: one chunk
index per token (B, T), never a dense (B, T, C) matrix.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from ctd.alignment.align import MODES, BatchAlignment, align_batch
from ctd.alignment.bias import TokenizationBias
from ctd.alignment.chat import encode_chat, is_chat
from ctd.alignment.encode import encode_batch_recording
from ctd.alignment.ragged import TokenizedBatch
from ctd.alignment.token_bytes import token_bytes

__all__ = ["CrossTokenizerBatch", "CrossTokenizerCollator", "pad_rows"]


@dataclass
class CrossTokenizerBatch:
    """A right-padded teacher/student batch with chunk indices.

    Shapes: teacher_* (B, Tt); student_* (B, Ts); num_chunks (B,); chunk_num_bytes and
    *_chunk_last_token (B, Cmax).

    Attributes:
        teacher_input_ids: token ids, padded with the pad id.
        teacher_attention_mask: 1 on real tokens.
        teacher_loss_mask: tokens whose likelihood counts (text; for chat, assistant content).
        teacher_chunk_index: chunk of each token, -1 = padding or in no chunk.
        student_input_ids: as teacher_input_ids.
        student_attention_mask: as teacher_attention_mask.
        student_loss_mask: as teacher_loss_mask.
        student_chunk_index: as teacher_chunk_index.
        num_chunks: chunks per row.
        chunk_num_bytes: bytes per chunk, 0 for padding chunks (and zero-width special chunks).
        teacher_chunk_last_token: last teacher token of each chunk, -1 for padding chunks.
        student_chunk_last_token: last student token of each chunk, -1 for padding chunks.
    """

    teacher_input_ids: Tensor
    teacher_attention_mask: Tensor
    teacher_loss_mask: Tensor
    teacher_chunk_index: Tensor
    student_input_ids: Tensor
    student_attention_mask: Tensor
    student_loss_mask: Tensor
    student_chunk_index: Tensor
    num_chunks: Tensor
    chunk_num_bytes: Tensor
    teacher_chunk_last_token: Tensor
    student_chunk_last_token: Tensor

    def to(self, device: torch.device | str) -> CrossTokenizerBatch:
        """A copy with every tensor on `device`."""
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)}
        return CrossTokenizerBatch(**moved)


def _row_mask(row_starts: npt.NDArray[np.int64], width: int = 0) -> npt.NDArray[np.bool_]:
    """Real (not padding) cells of a right-padded (R, max(width, longest row)) matrix.

    Shapes: (R + 1,) -> (R, W).
    """
    lengths = np.diff(row_starts)
    num_cols = max(int(lengths.max(initial=0)), width)
    return np.arange(num_cols) < lengths[:, None]


def pad_rows(
    values: npt.NDArray[Any],
    row_starts: npt.NDArray[np.int64],
    fill: int | bool,
    width: int = 0,
    mask: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[Any]:
    """Scatter a flat ragged array into a right-padded (R, max(width, longest row)) matrix.

    One `np.full` and one boolean-mask assignment (row-major order is the flat order);
    `mask` (`_row_mask` of the same rows and width) saves recomputing it when several arrays
    share rows. Shapes: values (M,), row_starts (R + 1,) -> (R, W).
    """
    if mask is None:
        mask = _row_mask(row_starts, width)
    if len(values) == mask.size:  # no padding needed
        return values.reshape(mask.shape)
    out = np.full(mask.shape, fill, dtype=values.dtype)
    out[mask] = values
    return out


def _pad_id(tokenizer: object) -> int:
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return 0


class CrossTokenizerCollator:
    """Examples (str, {"text"}, or {"messages"}) -> `CrossTokenizerBatch` for the losses.

    Args:
        teacher_tokenizer: the teacher's fast tokenizer (a transformers one for chat data).
        student_tokenizer: the student's fast tokenizer.
        max_teacher_length: truncate teacher tokens to this many.
        max_student_length: truncate student tokens to this many; the trailing partial chunk
            of a truncated pair is dropped.
        mode: "unconstrained", "space" or "unbiased".
        bias: `TokenizationBias` or a path to its .npz (mode="unbiased").
        pair_specials: zero-width specials at the same position on both sides form a chunk.
        add_special_tokens: add each tokenizer's BOS/EOS template to plain texts.
        loss_roles: chat roles whose content counts in the loss masks.
        on_unmappable: what to do with an example whose tokens cannot be mapped to exact bytes
            (an `<unk>`, bytes the tokenizer drops, a boundary inside a character a normalizer
            changed): "raise" (a ValueError) or "skip" (drop it from the batch with a warning
            naming the reason and the running count `num_skipped`). A batch in which every
            example is unmappable raises a ValueError either way.
    """

    def __init__(
        self,
        teacher_tokenizer: object,
        student_tokenizer: object,
        *,
        max_teacher_length: int,
        max_student_length: int,
        mode: str = "unconstrained",
        bias: TokenizationBias | str | Path | None = None,
        pair_specials: bool = True,
        add_special_tokens: bool = True,
        loss_roles: Sequence[str] = ("assistant",),
        on_unmappable: str = "raise",
    ) -> None:
        if on_unmappable not in ("raise", "skip"):
            raise ValueError(f"on_unmappable must be 'raise' or 'skip', got {on_unmappable!r}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode == "unbiased" and bias is None:
            raise ValueError("mode='unbiased' needs bias (see `ctd tokenizer-bias`)")
        self.teacher_tokenizer = teacher_tokenizer
        self.student_tokenizer = student_tokenizer
        self.max_teacher_length = max_teacher_length
        self.max_student_length = max_student_length
        self.mode = mode
        self.bias = TokenizationBias.load(bias) if isinstance(bias, (str, Path)) else bias
        self.pair_specials = pair_specials
        self.add_special_tokens = add_special_tokens
        self.loss_roles = set(loss_roles)
        self.teacher_token_bytes = token_bytes(teacher_tokenizer)
        self.student_token_bytes = token_bytes(student_tokenizer)
        self.teacher_pad_id = _pad_id(teacher_tokenizer)
        self.student_pad_id = _pad_id(student_tokenizer)
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
            for tokenizer in (self.teacher_tokenizer, self.student_tokenizer):
                try:
                    self._encode(tokenizer, [example], None)
                except ValueError as error:
                    failures.setdefault(index, str(error))
        return failures

    def _encode_pair(
        self, examples: list[Any]
    ) -> tuple[TokenizedBatch, TokenizedBatch, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Both sides' tokens and loss masks; unmappable examples dropped when skipping."""
        if self.on_unmappable == "raise":
            teacher, teacher_loss = self._encode(self.teacher_tokenizer, examples, None)
            student, student_loss = self._encode(self.student_tokenizer, examples, None)
            return teacher, student, teacher_loss, student_loss
        failures: dict[int, str] = {}
        try:
            teacher, teacher_loss = self._encode(self.teacher_tokenizer, examples, failures)
            student, student_loss = self._encode(self.student_tokenizer, examples, failures)
        except ValueError:
            if not (examples and all(is_chat(example) for example in examples)):
                raise
            failures = self._chat_failures(examples)
            if not failures:
                raise
            kept = [example for index, example in enumerate(examples) if index not in failures]
            self._warn_skipped(failures, len(examples))
            return self._encode_pair(kept)
        if failures:
            self._warn_skipped(failures, len(examples))
            keep_rows = np.ones(len(examples), dtype=np.bool_)
            keep_rows[list(failures)] = False
            teacher_loss = teacher_loss[np.repeat(keep_rows, teacher.row_lengths)]
            student_loss = student_loss[np.repeat(keep_rows, student.row_lengths)]
            teacher, student = teacher.select(keep_rows), student.select(keep_rows)
        return teacher, student, teacher_loss, student_loss

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
                f"CrossTokenizerCollator skipped example {index} of a batch of {batch_size}: "
                f"{failures[index]} ({self.num_skipped} skipped so far)",
                RuntimeWarning,
                stacklevel=4,
            )

    def __call__(self, examples: list[Any]) -> CrossTokenizerBatch:
        """Tokenize, align, truncate and pad a list of examples."""
        if not isinstance(examples, list):
            raise TypeError(f"examples must be a list, got {type(examples).__name__}")
        teacher, student, teacher_loss, student_loss = self._encode_pair(examples)
        teacher_keep = _keep_mask(teacher, self.max_teacher_length)
        student_keep = _keep_mask(student, self.max_student_length)
        teacher, student = (
            teacher.truncate(self.max_teacher_length),
            student.truncate(self.max_student_length),
        )
        alignment = align_batch(
            teacher,
            student,
            mode=self.mode,
            teacher_token_bytes=self.teacher_token_bytes,
            student_token_bytes=self.student_token_bytes,
            bias=self.bias,
            pair_specials=self.pair_specials,
        )
        return _to_tensors(
            teacher,
            student,
            teacher_loss if teacher_keep is None else teacher_loss[teacher_keep],
            student_loss if student_keep is None else student_loss[student_keep],
            alignment,
            (self.teacher_pad_id, self.student_pad_id),
        )


def _keep_mask(batch: TokenizedBatch, max_length: int) -> npt.NDArray[np.bool_] | None:
    """Tokens that survive truncation to `max_length`, None for all. Shapes: (M,)."""
    if not np.any(batch.row_lengths > max_length):
        return None
    position = np.arange(len(batch.input_ids)) - batch.row_starts[batch.token_rows]
    return np.asarray(position < max_length)


def _to_tensors(
    teacher: TokenizedBatch,
    student: TokenizedBatch,
    teacher_loss: npt.NDArray[np.bool_],
    student_loss: npt.NDArray[np.bool_],
    alignment: BatchAlignment,
    pad_ids: tuple[int, int],
) -> CrossTokenizerBatch:
    """Pad everything into tensors. Shapes: see `CrossTokenizerBatch`."""
    sides = {}
    for name, side, loss, chunk_index, pad_id in (
        ("teacher", teacher, teacher_loss, alignment.teacher_chunk_index, pad_ids[0]),
        ("student", student, student_loss, alignment.student_chunk_index, pad_ids[1]),
    ):
        mask = _row_mask(side.row_starts)  # (B, T)
        sides[f"{name}_input_ids"] = pad_rows(side.input_ids, side.row_starts, pad_id, 0, mask)
        sides[f"{name}_attention_mask"] = mask.astype(np.int64)
        sides[f"{name}_loss_mask"] = pad_rows(loss, side.row_starts, False, 0, mask)
        sides[f"{name}_chunk_index"] = pad_rows(chunk_index, side.row_starts, -1, 0, mask)
    chunk_rows = alignment.chunk_row_starts
    chunk_mask = _row_mask(chunk_rows)  # (B, Cmax)
    num_bytes = alignment.chunk_byte_ends - alignment.chunk_byte_starts
    sides["num_chunks"] = alignment.num_chunks
    sides["chunk_num_bytes"] = pad_rows(num_bytes, chunk_rows, 0, 0, chunk_mask)
    for name, last in (
        ("teacher", alignment.teacher_chunk_last_token),
        ("student", alignment.student_chunk_last_token),
    ):
        sides[f"{name}_chunk_last_token"] = pad_rows(last, chunk_rows, -1, 0, chunk_mask)
    tensors = {key: torch.from_numpy(value) for key, value in sides.items()}
    return CrossTokenizerBatch(**tensors)
