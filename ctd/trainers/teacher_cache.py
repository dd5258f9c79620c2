"""Task `distill` with an offline teacher: `ctd cache-teacher` writes, `teacher.cache` reads.

`write_teacher_cache` runs the frozen teacher once over the training and validation documents
(in file order, with the collator the trainer uses, so the teacher token ids are the trainer's)
and stores its token, space and EOS log-probs (`ctd.data.teacher_cache`). With
`teacher.cache=DIR`, `DistillationModule` reads them through `CachedTeacher` and runs no teacher
forward pass. What a cache cannot serve (teacher logits, hidden states, embeddings) is refused
when the config is loaded; a cache made for another teacher, tokenizer or data is refused at
set-up; a batch row that is not in it is refused when it is read.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ctd.config import DistillConfig
from ctd.data.datasets import DocumentStream
from ctd.data.readers import Example
from ctd.data.teacher_cache import (
    FIELDS,
    TeacherCacheError,
    TeacherCacheReader,
    TeacherCacheWriter,
    document_key,
    file_digests,
    fingerprint_differences,
    tensors_digest,
    tokenizer_digest,
)
from ctd.trainers._common import causal_lm_forward, freeze
from ctd.trainers.builders import load_model, num_embeddings
from ctd.trainers.distill_wiring import DISTILL_WIRINGS
from ctd.trainers.vocab import SideVocab
from ctd.trainers.wiring import HEAD_NEEDS, Need, SideOutputs, side_needs

FIELD_OF_NEED = {
    Need.TOKEN_LOGPROBS: "token_logprobs",
    Need.SPACE_LOGPROBS: "space_logprobs",
    Need.EOS_LOGPROBS: "eos_logprobs",
}
"""The needs a cache serves, and the field each is stored in."""


def check_teacher_cache_config(config: DistillConfig) -> None:
    """Refuse, before any model is loaded, a cache for losses that read more than it holds.

    Raises:
        ValueError: `student.cache` set, or a loss that needs teacher logits, hidden states or
            embeddings together with `teacher.cache`.
    """
    if config.student.cache is not None:
        raise ValueError("student.cache: only the teacher's outputs can be cached (teacher.cache)")
    if config.teacher.cache is None:
        return
    for loss in config.losses:
        teacher_needs, _ = side_needs(DISTILL_WIRINGS, [loss.name])
        beyond = sorted(need.value for need in teacher_needs - HEAD_NEEDS)
        if beyond:
            raise ValueError(
                f"teacher.cache holds the teacher's token, space and EOS log-probs only; loss "
                f"{loss.name!r} needs the teacher's {', '.join(beyond)}: drop teacher.cache or "
                "that loss"
            )


def teacher_fingerprint(
    config: DistillConfig, teacher: nn.Module, tokenizer: Any
) -> dict[str, Any]:
    """What decides the cached values: teacher weights, teacher tokenizer, data and lengths."""
    data = config.data
    return {
        "teacher": {
            "name_or_path": config.teacher.name_or_path,
            "gguf_file": config.teacher.gguf_file,
            "dtype": config.teacher.dtype,
            "weights_blake2b": tensors_digest(teacher.state_dict().items()),
        },
        "tokenizer_blake2b": tokenizer_digest(tokenizer),
        "data": {
            "files": file_digests([*data.train_files, *data.val_files]),
            "max_teacher_length": data.max_teacher_length,
            "max_document_bytes": data.max_document_bytes,
            "on_unmappable": data.on_unmappable,
        },
    }


class CachedTeacher:
    """The teacher side of a batch, read from a cache instead of a forward pass.

    Args:
        reader: the opened cache.
        dtype: the dtype the live teacher's log-probs have (the cache stores float32).
    """

    def __init__(self, reader: TeacherCacheReader, dtype: torch.dtype = torch.float32) -> None:
        self.reader = reader
        self.dtype = dtype

    def side_outputs(
        self, input_ids: Tensor, attention_mask: Tensor, needs: frozenset[Need]
    ) -> SideOutputs:
        """What `causal_lm_forward` would give for `needs` (each a cached log-prob).

        Shapes: input_ids, attention_mask (B, T) -> SideOutputs of (B, T) tensors.
        """
        fields = [FIELD_OF_NEED[need] for need in FIELD_OF_NEED if need in needs]
        fields = [name for name in fields if name in self.reader.fields]  # no EOS: none asked
        rows = self.reader.rows(input_ids, attention_mask, fields) if needs else {}
        values = {
            need: rows[name].to(self.dtype) for need, name in FIELD_OF_NEED.items() if name in rows
        }
        return SideOutputs(input_ids, values)


def open_teacher_cache(
    directory: str | Path, config: DistillConfig, teacher: nn.Module, tokenizer: Any
) -> CachedTeacher:
    """Open the cache in `directory`; check it was made for this teacher, tokenizer and data.

    Raises:
        TeacherCacheError: no finished cache there, or one made for something else (named).
    """
    reader = TeacherCacheReader(directory)
    differences = fingerprint_differences(
        reader.fingerprint, teacher_fingerprint(config, teacher, tokenizer)
    )
    if differences:
        raise TeacherCacheError(
            f"teacher.cache={directory} was made for {'; '.join(differences)}; "
            "make a new one with `ctd cache-teacher`"
        )
    dtype = getattr(torch, reader.manifest.get("values_dtype", "float32"))
    return CachedTeacher(reader, dtype)


def cache_documents(config: DistillConfig) -> DocumentStream:
    """Every training and validation document, in file order (what the cache covers)."""
    data = config.data
    return DocumentStream(
        [*data.train_files, *data.val_files], max_document_bytes=data.max_document_bytes
    )


def teacher_collator(config: DistillConfig, tokenizer: Any) -> Callable[[list[Example]], Any]:
    """The trainer's collator with the teacher on both sides: the same teacher token ids."""
    from ctd.alignment import CrossTokenizerCollator

    length = config.data.max_teacher_length
    return CrossTokenizerCollator(
        tokenizer,
        tokenizer,
        max_teacher_length=length,
        max_student_length=length,
        on_unmappable=config.data.on_unmappable,
    )


def _batches(examples: list[Example], size: int) -> Iterator[list[Example]]:
    for start in range(0, len(examples), size):
        yield examples[start : start + size]


class _ShardBuilder:
    """Runs the teacher on one shard's examples and collects distinct documents."""

    def __init__(self, teacher: nn.Module, vocab: SideVocab, collator: Any, fields: Sequence[str]):
        self.teacher, self.vocab, self.collator, self.fields = teacher, vocab, collator, fields
        self.needs = frozenset(need for need, name in FIELD_OF_NEED.items() if name in fields)
        self.values_dtype = "float32"

    @torch.no_grad()
    def build(
        self, examples: list[Example], batch_size: int
    ) -> tuple[list[bytes], dict[str, list[Tensor]]]:
        keys: list[bytes] = []
        seen: set[bytes] = set()
        values: dict[str, list[Tensor]] = {name: [] for name in self.fields}
        for chunk in _batches(examples, batch_size):
            batch = self.collator(chunk)
            ids, mask = batch.teacher_input_ids, batch.teacher_attention_mask
            side = causal_lm_forward(
                self.teacher,
                ids,
                mask,
                self.needs,
                space_token_mask=self.vocab.space_token_mask,
                eos_token_id=self.vocab.eos_token_id,
            )
            self.values_dtype = str(side[Need.TOKEN_LOGPROBS].dtype).removeprefix("torch.")
            for row, length in enumerate(mask.sum(dim=1).tolist()):
                key = document_key(ids[row, :length].numpy())
                if key in seen:
                    continue
                seen.add(key)
                keys.append(key)
                for need, name in FIELD_OF_NEED.items():
                    if name in values:
                        values[name].append(side[need][row, :length].float())
        return keys, values


def write_teacher_cache(
    config: DistillConfig,
    directory: str | Path,
    *,
    batch_size: int,
    shard_documents: int,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the teacher over the data once and write (or finish) the cache in `directory`.

    Shards already on disk are skipped without running the teacher. Returns the final manifest
    plus `written_shards`, `skipped_shards`, `seconds` and `bytes_per_token`.

    Raises:
        TeacherCacheError: `directory` holds a cache for something else.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    teacher, tokenizer = load_model(config.teacher)
    teacher = freeze(teacher)
    vocab = SideVocab.from_tokenizer(tokenizer, num_embeddings(teacher))
    fields = [name for name in FIELDS if name != "eos_logprobs" or vocab.eos_token_id is not None]
    writer = TeacherCacheWriter(
        directory, teacher_fingerprint(config, teacher, tokenizer), fields, shard_documents
    )
    builder = _ShardBuilder(teacher, vocab, teacher_collator(config, tokenizer), fields)
    documents = cache_documents(config)
    total = sum(1 for _ in documents.iter_all_examples())
    if total == 0:
        raise ValueError(f"no documents to cache in {[str(f) for f in documents.files]}")
    stream = documents.iter_all_examples()
    counts = {"written_shards": 0, "skipped_shards": 0}
    bar = tqdm(total=total, unit="doc", desc="ctd cache-teacher", disable=not progress)
    for index in itertools.count():
        examples = list(itertools.islice(stream, shard_documents))
        if not examples:
            break
        if writer.shard_done(index):
            counts["skipped_shards"] += 1
        else:
            keys, values = builder.build(examples, batch_size)
            writer.write_shard(index, keys, values)
            counts["written_shards"] += 1
        bar.update(len(examples))
    bar.close()
    writer.manifest["values_dtype"] = builder.values_dtype
    totals = _totals(Path(directory), index)
    manifest = writer.finish(index, totals)
    return {
        **manifest,
        **counts,
        "seconds": round(time.perf_counter() - started, 3),
        "bytes_per_token": round(totals["num_bytes"] / max(1, totals["num_tokens"]), 3),
    }


def _totals(directory: Path, num_shards: int) -> dict[str, int]:
    """Documents, tokens and bytes on disk over all shards."""
    from safetensors import safe_open

    from ctd.data.teacher_cache import shard_path

    totals = {"num_documents": 0, "num_tokens": 0, "num_bytes": 0}
    for index in range(num_shards):
        path = shard_path(directory, index)
        with safe_open(str(path), framework="pt") as handle:
            offsets = handle.get_slice("offsets")
            count = offsets.get_shape()[0] - 1
            totals["num_documents"] += count
            totals["num_tokens"] += int(offsets[count : count + 1][0]) if count else 0
        totals["num_bytes"] += path.stat().st_size
    return totals


def cache_summary(values: Mapping[str, Any]) -> str:
    """One line for the console: documents, tokens, bytes per token."""
    return (
        f"{values['num_documents']} documents, {values['num_tokens']} teacher tokens, "
        f"{values['num_bytes']} bytes ({values['bytes_per_token']} bytes/token) in "
        f"{values['num_shards']} shards ({values['skipped_shards']} already there)"
    )
