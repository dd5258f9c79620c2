"""The beam of a `ctd.ensemble.byte_lm.ByteLM`: token-prefix nodes, hypotheses, and its state.

A node is a token prefix whose bytes end at some byte position, with its cache slots in a
`TokenTree` and its next-token masses; a hypothesis is a node plus the bytes after it that its
next token must start with (the Byte-Token Representation lemma of Phan et al. 2024,
arXiv 2410.09303). `fork_state` copies a state so that one context can be continued several ways:
with its own copy of the cache, or sharing the cache, so that the copies can be advanced together
(`ByteLM.advance_lanes`, one forward for all of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ctd.ensemble.token_tree import TokenTree

__all__ = ["BeamNode", "ByteLMState", "Floats", "Hypothesis", "fork_state", "prune_candidates"]

Floats = npt.NDArray[np.float64]


@dataclass
class BeamNode:
    """A token prefix whose bytes end at a byte position: its cache slots and next-token masses."""

    path: list[int]  # its slots in the TokenTree's cache (context first)
    sorted_probs: Floats  # (N + 1,): q(token | prefix) in byte order, then a 0 pad
    eos_prob: float
    token_ids: tuple[int, ...]


@dataclass
class Hypothesis:
    """A node and the bytes after its end that its next token must start with."""

    node: BeamNode
    pending: bytes  # bytes after the node's end that its next token must start with
    log_weight: float  # log q(node's token prefix)
    canonical: bool = False  # on the scored text's canonical tokenization (kept by the beam)


@dataclass
class ByteLMState:
    """The beam after some bytes; `ByteLM.advance` consumes it (its caches move on).

    A state is stale once its tree was compacted by advancing other states (its slots were
    renumbered): `tree_compactions` is the tree's count when the state was made.
    """

    hypotheses: list[Hypothesis]
    num_bytes: int
    tree: TokenTree
    canonical_ends: dict[int, int] | None = None  # text byte where a canonical token ends -> id
    consumed: bool = field(default=False)
    tree_compactions: int = -1  # -1: the tree's count now

    def __post_init__(self) -> None:
        if self.tree_compactions < 0:
            self.tree_compactions = self.tree.compactions

    @property
    def stale(self) -> bool:
        """Its tree was compacted since it was made (its paths point at renumbered slots)."""
        return self.tree_compactions != self.tree.compactions


def fork_state(state: ByteLMState, *, share_tree: bool = False) -> ByteLMState:
    """A copy of `state` to advance while `state` stays.

    Its `canonical_ends` may be replaced (e.g. by the plan of what is scored next).

    Args:
        state: the state to copy.
        share_tree: keep `state`'s token tree (no copy of the cache). The copies must then be
            advanced together, all in one `ByteLM.advance_lanes` call per byte: a compaction
            by one call makes every state of the tree it was not given stale.

    Raises:
        ValueError: `state` was already advanced, or is stale.
    """
    if state.consumed:
        raise ValueError("this ByteLMState was already advanced; fork it before advancing")
    if state.stale:
        raise ValueError("this ByteLMState is stale: its token tree was compacted since")
    nodes = {
        id(h.node): BeamNode(
            list(h.node.path), h.node.sorted_probs, h.node.eos_prob, h.node.token_ids
        )
        for h in state.hypotheses
    }
    hypotheses = [
        Hypothesis(nodes[id(h.node)], h.pending, h.log_weight, h.canonical)
        for h in state.hypotheses
    ]
    plan = None if state.canonical_ends is None else dict(state.canonical_ends)
    tree = state.tree if share_tree else state.tree.fork()
    return ByteLMState(hypotheses, state.num_bytes, tree, plan)


Candidate = tuple[float, Hypothesis, int]  # (log mass, hypothesis, token to commit or -1)


def prune_candidates(
    found: list[Candidate], beam_width: int | None, log_prune: float
) -> list[Candidate]:
    """The largest `beam_width` candidates above the threshold, plus the best token end.

    A hypothesis that ends exactly here is always kept (beyond the width if need be), so
    that every byte some token starts with keeps a positive probability at the next step;
    so is the canonical path of a scored text. Sorts `found` in place.
    """
    found.sort(key=lambda item: -item[0])
    log_total = float(np.logaddexp.reduce([item[0] for item in found]))
    kept = [item for item in found if item[0] - log_total >= log_prune]
    kept = kept if beam_width is None else kept[:beam_width]
    if not any(item[2] >= 0 for item in kept):
        kept += [item for item in found if item[2] >= 0][:1]
    if not any(item[1].canonical for item in kept):
        kept += [item for item in found if item[1].canonical]
    return kept
