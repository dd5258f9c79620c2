"""An offline teacher cache: per-token teacher log-probs in safetensors shards, keyed by document.

ALM reads three numbers per teacher token: the main-path log-prob log p(x_t | x_<t), the
probability that the next token is space-like and that it is EOS (`ctd.losses.
token_logprobs_from_hidden`). `ctd cache-teacher` computes them once and stores them as float32
(12 bytes per token, plus 24 bytes per document for its key and offset), so training reads them
instead of running the teacher. A logit cache such as DistillKit's top-k stores ~300 bytes per
token, for a student on the teacher's own tokenizer only.

A document's key is the 128-bit BLAKE2b hash of its teacher token ids after truncation: the
teacher's outputs are a function of exactly those ids, so a batch row is found by hashing its
ids, whatever the shuffling, the batch it lands in or the DDP rank. A row that is not in the
cache is an error, never a silent fallback to other values.

Layout of a cache directory:
    manifest.json          fingerprint (teacher weights, tokenizer, data), fields, shard size,
                           and, once finished, `complete: true` with the totals
    shard_00000.safetensors
        keys     (D, 16) uint8   document keys
        offsets  (D + 1,) int64  token offsets of each document
        <field>  (N,) float32    one flat array per cached field, N = offsets[-1]
Shards are written to a temporary name and renamed, so a shard on disk is always complete and
an interrupted run resumes after its last finished shard.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
FIELDS = ("token_logprobs", "space_logprobs", "eos_logprobs")
"""What a cache can hold, in this order; `eos_logprobs` only for a teacher with an EOS token."""
KEY_BYTES = 16


class TeacherCacheError(ValueError):
    """A cache that is missing, unfinished, made for something else, or lacks a document."""


def document_key(teacher_input_ids: npt.NDArray[Any] | Sequence[int]) -> bytes:
    """The cache key of one document: BLAKE2b-128 of its teacher token ids (as int64)."""
    ids = np.ascontiguousarray(teacher_input_ids, dtype=np.int64)
    return hashlib.blake2b(ids.tobytes(), digest_size=KEY_BYTES).digest()


def tensors_digest(named_tensors: Iterable[tuple[str, Tensor]]) -> str:
    """BLAKE2b of names, dtypes, shapes and bytes of tensors, in name order (a weights hash)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(named_tensors, key=lambda item: item[0]):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().data)
    return digest.hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    """BLAKE2b of a fast tokenizer's full JSON, its special-token ids and chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    parts = [
        backend.to_str(),
        *(str(getattr(tokenizer, f"{role}_token_id", None)) for role in ("bos", "eos", "pad")),
        str(getattr(tokenizer, "chat_template", None)),
    ]
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).hexdigest()


def file_digests(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Name, size and BLAKE2b of the contents of each data file (the contents decide)."""
    found = []
    for path in map(Path, paths):
        digest = hashlib.blake2b(digest_size=16)
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        found.append(
            {"path": str(path), "bytes": path.stat().st_size, "blake2b": digest.hexdigest()}
        )
    return found


def fingerprint_differences(cached: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprints, `[]` when they agree.

    Only the values that decide the teacher's outputs are compared: the weights hash, the
    tokenizer hash, the data files' contents and the lengths that cut documents; paths and model
    names only appear in the messages.
    """
    differences = []
    cached_teacher, current_teacher = cached["teacher"], current["teacher"]
    if cached_teacher["weights_blake2b"] != current_teacher["weights_blake2b"]:
        differences.append(
            f"another teacher (cache: {cached_teacher['name_or_path']} {cached_teacher['dtype']}, "
            f"now: {current_teacher['name_or_path']} {current_teacher['dtype']}; weights differ)"
        )
    if cached["tokenizer_blake2b"] != current["tokenizer_blake2b"]:
        differences.append("another teacher tokenizer (its JSON, special ids or chat template)")
    cached_data, current_data = cached["data"], current["data"]
    for key in sorted(set(cached_data) | set(current_data)):
        if key == "files":
            continue
        if cached_data.get(key) != current_data.get(key):
            differences.append(
                f"data.{key}: {cached_data.get(key)} in the cache, now {current_data.get(key)}"
            )
    cached_files = [(f["blake2b"], f["bytes"]) for f in cached_data["files"]]
    current_files = [(f["blake2b"], f["bytes"]) for f in current_data["files"]]
    if cached_files != current_files:
        names = [f["path"] for f in cached_data["files"]]
        now = [f["path"] for f in current_data["files"]]
        differences.append(f"other data files or contents (cache: {names}, now: {now})")
    return differences


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.is_file():
        return None
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != CACHE_FORMAT:
        raise TeacherCacheError(
            f"{path}: cache format {manifest.get('format')}, this ctd reads {CACHE_FORMAT}"
        )
    return manifest


def _write_json_atomically(path: Path, value: Mapping[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True))
    os.replace(temporary, path)


def shard_path(directory: Path, index: int) -> Path:
    """Where shard `index` lives."""
    return directory / f"shard_{index:05d}.safetensors"


class TeacherCacheWriter:
    """Writes the shards of one cache; reopening a directory resumes it.

    Args:
        directory: the cache directory (created).
        fingerprint: what the cache is for (`ctd.trainers.teacher_cache.teacher_fingerprint`).
        fields: the cached fields, a subset of `FIELDS` in that order.
        shard_documents: examples per shard.

    Raises:
        TeacherCacheError: the directory holds a cache for another fingerprint, other fields or
            another shard size.
    """

    def __init__(
        self,
        directory: str | Path,
        fingerprint: Mapping[str, Any],
        fields: Sequence[str],
        shard_documents: int,
    ) -> None:
        if shard_documents < 1:
            raise ValueError(f"shard_documents must be >= 1, got {shard_documents}")
        unknown = [name for name in fields if name not in FIELDS]
        if unknown or not fields:
            raise ValueError(f"fields must be a non-empty subset of {FIELDS}, got {list(fields)}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fields = tuple(fields)
        self.shard_documents = shard_documents
        self.manifest: dict[str, Any] = {
            "format": CACHE_FORMAT,
            "fingerprint": dict(fingerprint),
            "fields": list(self.fields),
            "shard_documents": shard_documents,
            "complete": False,
        }
        existing = _read_manifest(self.directory)
        if existing is not None:
            self._check_resumable(existing)
        else:
            _write_json_atomically(self.directory / MANIFEST, self.manifest)

    def _check_resumable(self, existing: Mapping[str, Any]) -> None:
        where = self.directory
        differences = fingerprint_differences(existing["fingerprint"], self.manifest["fingerprint"])
        if differences:
            raise TeacherCacheError(
                f"{where} holds a teacher cache for {'; '.join(differences)}; use another "
                "directory or delete it"
            )
        for key in ("fields", "shard_documents"):
            if existing[key] != self.manifest[key]:
                raise TeacherCacheError(
                    f"{where} was started with {key}={existing[key]}, not {self.manifest[key]}; "
                    f"resume with the same value or use another directory"
                )

    def shard_done(self, index: int) -> bool:
        """Whether shard `index` was already written (by this run or an interrupted one)."""
        return shard_path(self.directory, index).is_file()

    def write_shard(
        self, index: int, keys: Sequence[bytes], values: Mapping[str, Sequence[Tensor]]
    ) -> int:
        """Write one shard atomically; the number of bytes on disk.

        Args:
            index: the shard number.
            keys: one `document_key` per document (distinct).
            values: field -> one float32 (n_i,) tensor per document, in `keys` order.
        """
        from safetensors.torch import save_file

        lengths = [len(row) for row in values[self.fields[0]]]
        if len(lengths) != len(keys) or len(set(keys)) != len(keys):
            raise ValueError("write_shard needs one row per distinct key")
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), KEY_BYTES)
        tensors = {"keys": torch.from_numpy(key_array.copy()), "offsets": torch.from_numpy(offsets)}
        for name in self.fields:
            rows = [row.to(torch.float32).reshape(-1) for row in values[name]]
            tensors[name] = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.float32)
        path = shard_path(self.directory, index)
        temporary = path.with_name(f".{path.name}.tmp")
        save_file(tensors, str(temporary), metadata={"format": str(CACHE_FORMAT)})
        os.replace(temporary, path)
        return path.stat().st_size

    def finish(self, num_shards: int, totals: Mapping[str, int]) -> dict[str, Any]:
        """Mark the cache complete (after every shard is written); the final manifest."""
        missing = [index for index in range(num_shards) if not self.shard_done(index)]
        if missing:
            raise TeacherCacheError(f"cannot finish {self.directory}: shards {missing} missing")
        self.manifest.update(complete=True, num_shards=num_shards, **totals)
        _write_json_atomically(self.directory / MANIFEST, self.manifest)
        return dict(self.manifest)


class TeacherCacheReader:
    """Serves cached teacher rows for batches of teacher token ids.

    The index (key -> shard, offset, length) is built when the cache is opened; values are read
    from the memory-mapped shards when a batch asks for them. Picklable (DataLoader workers, DDP
    spawn): open shard handles are dropped and reopened.

    Raises:
        TeacherCacheError: no manifest, an unfinished cache, or a missing shard.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        manifest = _read_manifest(self.directory)
        if manifest is None:
            raise TeacherCacheError(
                f"teacher.cache={self.directory}: no teacher cache there (no {MANIFEST}); "
                "make one with `ctd cache-teacher --config ... teacher.cache=DIR`"
            )
        if not manifest["complete"]:
            done = len(list(self.directory.glob("shard_*.safetensors")))
            raise TeacherCacheError(
                f"teacher.cache={self.directory} is unfinished ({done} shards written); rerun "
                "`ctd cache-teacher` with the same config to finish it"
            )
        self.manifest = manifest
        self.fields: tuple[str, ...] = tuple(manifest["fields"])
        self._handles: dict[int, Any] = {}
        self._index = self._build_index(int(manifest["num_shards"]))

    def _build_index(self, num_shards: int) -> dict[bytes, tuple[int, int, int]]:
        from safetensors import safe_open

        index: dict[bytes, tuple[int, int, int]] = {}
        for shard in range(num_shards):
            path = shard_path(self.directory, shard)
            if not path.is_file():
                raise TeacherCacheError(f"teacher.cache={self.directory}: {path.name} is missing")
            with safe_open(str(path), framework="pt") as handle:
                keys = handle.get_tensor("keys").numpy()
                offsets = handle.get_tensor("offsets").numpy()
            for row, key in enumerate(keys):
                start = int(offsets[row])
                index.setdefault(key.tobytes(), (shard, start, int(offsets[row + 1]) - start))
        return index

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What the cache was made for."""
        return dict(self.manifest["fingerprint"])

    def __len__(self) -> int:
        return len(self._index)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def _handle(self, shard: int) -> Any:
        from safetensors import safe_open

        if shard not in self._handles:
            self._handles[shard] = safe_open(str(shard_path(self.directory, shard)), "pt")
        return self._handles[shard]

    def rows(
        self, input_ids: Tensor, attention_mask: Tensor, fields: Sequence[str]
    ) -> dict[str, Tensor]:
        """The cached `fields` of every row of a right-padded teacher batch, 0 on padding.

        Shapes: input_ids, attention_mask (B, T) -> field -> (B, T) float32 on input_ids.device.

        Raises:
            TeacherCacheError: a row whose token ids are not in the cache, or a field it lacks.
        """
        missing = [name for name in fields if name not in self.fields]
        if missing:
            raise TeacherCacheError(
                f"teacher.cache={self.directory} has no {missing} (it holds {list(self.fields)})"
            )
        ids = input_ids.detach().cpu().numpy()
        lengths = attention_mask.detach().cpu().sum(dim=1).tolist()
        out = {name: torch.zeros(ids.shape, dtype=torch.float32) for name in fields}
        for row, length in enumerate(lengths):
            found = self._index.get(document_key(ids[row, :length]))
            if found is None:
                raise TeacherCacheError(
                    f"teacher.cache={self.directory}: batch row {row} ({length} teacher tokens) "
                    "is not in the cache; it was made for other data or other data settings"
                )
            shard, start, count = found
            handle = self._handle(shard)
            for name in fields:
                out[name][row, :count] = handle.get_slice(name)[start : start + count]
        return {name: value.to(input_ids.device) for name, value in out.items()}
