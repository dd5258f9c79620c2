"""How a drafter's tokens become target tokens, and target tokens become drafter tokens.

Same tokenizer: the identity (`SharedVocabulary`).

Different tokenizers: token-level intersection, TLI (Timor et al. 2025, "Accelerating LLM
Inference with Lossless Speculative Decoding Algorithms for Heterogeneous Vocabularies",
arXiv 2502.05202, ICML; shipped as vLLM's TLI and HF's UniversalSpeculativeDecodingGenerator).
A drafter token whose exact bytes (`ctd.alignment.token_bytes`) equal a target token's is
*shared*; the drafter drafts only shared tokens (its distribution restricted to them and
renormalised), each draft is one target token, and the target verifies with the standard
speculative-sampling rule. The rule is lossless for *any* draft distribution over the target
vocabulary, and q restricted to the intersection is one, so sampling is lossless; greedy is too.

Why TLI and not the alternatives of the same paper: string-level exact match (SLEM) is lossless
only for greedy decoding, and string-level rejection sampling (SLRS) is exact for sampling but
needs the drafter's probability of every string that covers a target token (combinatorially
many drafter calls). TLI keeps one drafter call per draft token, a drafter KV cache that stays
valid for every accepted token (a shared token's bytes are the same on both sides) and no
re-tokenisation of drafts. Its cost: drafts are limited to the intersection (for SmolLM2 ->
Gemma 3 most of the drafter's vocabulary; vLLM reports 72-99.8% overlaps for common pairs).

Tokens the *target* emits (a correction or bonus, possibly outside the intersection) reach the
drafter through their bytes: the longest drafter tokens that spell them (a byte trie). Bytes no
drafter token spells are skipped: the drafter's context only affects acceptance, never the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ctd.decoding.sampling import warp_probs

__all__ = ["DraftVocabulary", "SharedVocabulary", "TokenIntersection"]


class DraftVocabulary(Protocol):
    """The conversions speculative decoding needs between drafter and target ids."""

    def draft_probs(
        self, drafter_logits: torch.Tensor, temperature: float, top_p: float
    ) -> torch.Tensor:
        """The drafter's warped distribution over *drafter* ids, zero where it may not draft."""

    def to_target_probs(self, drafter_probs: torch.Tensor) -> torch.Tensor:
        """A drafter-id distribution (..., Vd) as a target-id one (..., Vt)."""

    def to_target_id(self, drafter_id: int) -> int:
        """The target id of a draftable drafter id."""

    def to_drafter_ids(self, target_ids: Sequence[int]) -> list[int]:
        """Drafter ids spelling the same bytes as these target ids."""


class SharedVocabulary:
    """Drafter and target share one tokenizer: every conversion is the identity."""

    def draft_probs(
        self, drafter_logits: torch.Tensor, temperature: float, top_p: float
    ) -> torch.Tensor:
        """`warp_probs` of the drafter's logits."""
        return warp_probs(drafter_logits, temperature=temperature, top_p=top_p)

    def to_target_probs(self, drafter_probs: torch.Tensor) -> torch.Tensor:
        """The same tensor."""
        return drafter_probs

    def to_target_id(self, drafter_id: int) -> int:
        """The same id."""
        return drafter_id

    def to_drafter_ids(self, target_ids: Sequence[int]) -> list[int]:
        """The same ids."""
        return list(target_ids)


def _padded(
    pieces: list[bytes], special: list[bool], size: int | None
) -> tuple[list[bytes], list[bool]]:
    """Pad a byte vocabulary with empty special entries up to a model's logit count."""
    if size is None or size <= len(pieces):
        return pieces, special
    extra = size - len(pieces)
    return pieces + [b""] * extra, special + [True] * extra


@dataclass
class _ByteTrie:
    children: dict[int, _ByteTrie] = field(default_factory=dict)
    token_id: int = -1


class TokenIntersection:
    """Token-level intersection (TLI) of a drafter and a target vocabulary.

    Args:
        drafter_bytes: the bytes of every drafter id (index = id).
        target_bytes: the bytes of every target id.
        drafter_special: drafter ids that are special tokens (never shared by bytes).
        target_special: target ids that are special tokens.
        special_pairs: (drafter id, target id) pairs shared although special, e.g. the EOS ids,
            so the drafter can propose the end of an answer.

    Attributes:
        drafter_to_target: (Vd,) long, the target id of each shared drafter id, -1 elsewhere.
        shared_count: how many drafter ids are shared.
    """

    def __init__(
        self,
        drafter_bytes: Sequence[bytes],
        target_bytes: Sequence[bytes],
        *,
        drafter_special: Sequence[bool] | None = None,
        target_special: Sequence[bool] | None = None,
        special_pairs: Sequence[tuple[int, int]] = (),
    ) -> None:
        drafter_special = drafter_special or [False] * len(drafter_bytes)
        target_special = target_special or [False] * len(target_bytes)
        target_of: dict[bytes, int] = {}
        for target_id, piece in enumerate(target_bytes):
            if piece and not target_special[target_id]:
                target_of.setdefault(piece, target_id)
        mapping = [-1] * len(drafter_bytes)
        self._trie = _ByteTrie()
        for drafter_id, piece in enumerate(drafter_bytes):
            if not piece or drafter_special[drafter_id]:
                continue
            mapping[drafter_id] = target_of.get(piece, -1)
            self._insert(piece, drafter_id)
        for drafter_id, target_id in special_pairs:
            mapping[drafter_id] = target_id
        self.target_vocab_size = len(target_bytes)
        self.drafter_to_target = torch.tensor(mapping, dtype=torch.long)
        self.shared_count = int((self.drafter_to_target >= 0).sum())
        if self.shared_count == 0:
            raise ValueError("the drafter and target vocabularies share no token: TLI cannot draft")
        self._target_bytes = list(target_bytes)
        self._target_pair = {target_id: drafter_id for drafter_id, target_id in special_pairs}
        self._blocked = self.drafter_to_target < 0
        self._device_copies: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_tokenizers(
        cls,
        drafter_tokenizer: Any,
        target_tokenizer: Any,
        *,
        drafter_vocab_size: int | None = None,
        target_vocab_size: int | None = None,
    ) -> TokenIntersection:
        """The intersection of two HF tokenizers' byte vocabularies; their EOS ids are paired.

        Args:
            drafter_tokenizer: the drafter's fast tokenizer.
            target_tokenizer: the target's fast tokenizer.
            drafter_vocab_size: the drafter's logit count when its head has padding rows.
            target_vocab_size: the same for the target.
        """
        from ctd.alignment.token_bytes import token_bytes

        drafter = token_bytes(drafter_tokenizer)
        target = token_bytes(target_tokenizer)
        pairs = []
        if drafter_tokenizer.eos_token_id is not None and target_tokenizer.eos_token_id is not None:
            pairs.append((int(drafter_tokenizer.eos_token_id), int(target_tokenizer.eos_token_id)))
        drafter_bytes, drafter_special = _padded(
            drafter.bytes_of, drafter.is_special.tolist(), drafter_vocab_size
        )
        target_bytes, target_special = _padded(
            target.bytes_of, target.is_special.tolist(), target_vocab_size
        )
        return cls(
            drafter_bytes,
            target_bytes,
            drafter_special=drafter_special,
            target_special=target_special,
            special_pairs=pairs,
        )

    def _insert(self, piece: bytes, drafter_id: int) -> None:
        node = self._trie
        for byte in piece:
            node = node.children.setdefault(byte, _ByteTrie())
        if node.token_id < 0:
            node.token_id = drafter_id

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._device_copies:
            self._device_copies[device] = (
                self._blocked.to(device),
                self.drafter_to_target.to(device),
            )
        return self._device_copies[device]

    def draft_probs(
        self, drafter_logits: torch.Tensor, temperature: float, top_p: float
    ) -> torch.Tensor:
        """The drafter's distribution restricted to shared ids, renormalised, then warped.

        Shapes: drafter_logits (..., Vd) -> (..., Vd).
        """
        blocked, _ = self._on(drafter_logits.device)
        restricted = drafter_logits.masked_fill(blocked, float("-inf"))
        return warp_probs(restricted, temperature=temperature, top_p=top_p)

    def to_target_probs(self, drafter_probs: torch.Tensor) -> torch.Tensor:
        """Scatter-add the shared ids' mass onto their target ids.

        Shapes: drafter_probs (..., Vd) -> (..., Vt).
        """
        blocked, mapping = self._on(drafter_probs.device)
        shape = (*drafter_probs.shape[:-1], self.target_vocab_size)
        target = drafter_probs.new_zeros(shape)
        index = mapping.clamp(min=0).expand_as(drafter_probs)
        return target.scatter_add(-1, index, drafter_probs.masked_fill(blocked, 0.0))

    def to_target_id(self, drafter_id: int) -> int:
        """The target id of a shared drafter id.

        Raises:
            ValueError: the id is not shared (TLI never drafts it).
        """
        target_id = int(self.drafter_to_target[drafter_id])
        if target_id < 0:
            raise ValueError(f"drafter id {drafter_id} is not in the token intersection")
        return target_id

    def to_drafter_ids(self, target_ids: Sequence[int]) -> list[int]:
        """Drafter ids spelling the target ids' bytes: paired specials, else longest match."""
        out: list[int] = []
        for target_id in target_ids:
            if target_id in self._target_pair:
                out.append(self._target_pair[target_id])
            else:
                out.extend(self.spell(self._target_bytes[target_id]))
        return out

    def spell(self, data: bytes) -> list[int]:
        """Greedy longest-match drafter ids for a byte string (unspellable bytes skipped)."""
        ids: list[int] = []
        start = 0
        while start < len(data):
            node, best_id, best_end = self._trie, -1, start + 1
            for end in range(start, len(data)):
                child = node.children.get(data[end])
                if child is None:
                    break
                node = child
                if node.token_id >= 0:
                    best_id, best_end = node.token_id, end + 1
            if best_id >= 0:
                ids.append(best_id)
            start = best_end
        return ids
