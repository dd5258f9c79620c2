"""A token LM as a byte LM: next-byte distributions marginalised over covering tokenizations.

The probability that a token LM's output starts with the bytes x is the sum, over the token
sequences that *cover* x, of their prefix probabilities: every token but the last ends inside
x, and the last one reaches or straddles its end (the Byte-Token Representation lemma of Phan
et al. 2024, arXiv 2410.09303; the beam-summing of genlm-bytes, Vieira et al. 2024,
arXiv 2412.03719). Then P(b | x) = P(xb) / P(x) and P(EOS | x) = P(x, EOS) / P(x).

Here the covers live in a beam of *hypotheses* (a token prefix whose bytes end exactly at some
position of x, plus the bytes of x after it, which the next token must start with). Tokens are
kept in byte order, so the tokens that start with a given prefix are one contiguous range and
every hypothesis's mass over the 256 next bytes is one `np.add.reduceat`. A hypothesis whose
pending bytes spell a whole token forks: the token is committed and the old hypothesis keeps
only the strictly longer tokens. All the tokens committed at one byte go through the model in
one forward over one shared cache (`TokenTree`: each token attends to its own ancestors).
Several texts can be stepped together (`advance_lanes`: states on one tree, e.g. the choices of
a question, or the contexts of several questions from `initial_after_batch`), so that a byte of
all of them costs one forward, one read of the weights, instead of one per text.
With `beam_width=None` and `prune_threshold=0` the result is exact (exponential in the text
length: tests only); a finite beam keeps the `beam_width` hypotheses of largest mass (and
always the best one that ends at the current byte, so that no byte a token starts with gets
probability 0), which makes every next-byte distribution a proper distribution of a slightly
different byte LM (its error against the exact marginal is measured in results/ensemble.md).

A beam can lose a text's canonical tokenization (the SmolLM2 passage of results/ensemble.md lost
it at ` (Di`, where four hypotheses inside longer tokens outweighed ` (` `D` + `i...`, and
scored 2.996 bits/byte against the canonical 2.840). So `score` keeps the scored text's
canonical path in the beam (beyond the width if need be): the beam's log P(text) is then at
least the canonical tokenization's. Each step's distribution is normalised over its kept mass
K_i <= F_i, the mass of all extensions, so P_beam(x) = F_n prod_i F_i / K_i >= F_n, and F_n
holds the canonical path. The price: which hypotheses are kept at byte i depends on the whole
text's canonical tokenization (bytes after i), so scored texts' per-byte conditionals are not
those of one fixed byte LM; generation (no text known) never keeps a path.

The token LM's distribution is restricted to the tokens that spell bytes (not special, not a
role token such as BOS, not `<unk>`, not empty) plus EOS, and renormalised. A tokenizer that
adds a dummy-prefix space conditions on that space. Next-byte distributions have 257 entries:
bytes 0..255, then EOS.

The pieces around the beam: `ctd.ensemble.token_byte_trie` (the tokens in byte order, the
context ids), `ctd.ensemble.byte_lm_state` (nodes, hypotheses, the state and its fork) and
`ctd.ensemble.canonical_path` (the plan of the kept canonical path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from ctd.ensemble import canonical_path
from ctd.ensemble.byte_lm_state import (
    BeamNode,
    ByteLMState,
    Floats,
    Hypothesis,
    fork_state,
    prune_candidates,
)
from ctd.ensemble.canonical_path import canonical_text
from ctd.ensemble.token_byte_trie import TokenByteTrie, context_ids
from ctd.ensemble.token_tree import TokenTree
from ctd.evaluation.downstream import sliding_window

__all__ = ["EOS_INDEX", "ByteLM", "ByteLMState", "TokenByteTrie", "canonical_text", "context_ids"]

EOS_INDEX = 256
"""Index of end-of-sequence in a next-byte distribution (bytes are 0..255)."""

COMPACT_SLACK = 64
"""The token tree is compacted once it holds more than 2 x (live slots) + this many slots."""


class ByteLM:
    """Next-byte distributions of a Hugging Face causal LM through its own tokenizer.

    Args:
        model: a causal LM whose first V output rows are the tokenizer's ids.
        tokenizer: its fast tokenizer.
        beam_width: hypotheses kept after each byte (None: all, exact).
        prune_threshold: drop hypotheses below this share of the beam's mass (0: none).
        eos_token_id: the id that ends a text (default: the tokenizer's EOS; None: no EOS).
        name: how errors name this member.

    Raises:
        ValueError: the tokenizer cannot be mapped onto bytes, the model has fewer output rows
            than the tokenizer has ids, or beam_width < 1.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        beam_width: int | None = 8,
        prune_threshold: float = 0.0,
        eos_token_id: int | None | str = "tokenizer",
        name: str = "the member",
    ) -> None:
        if beam_width is not None and beam_width < 1:
            raise ValueError(f"beam_width must be at least 1 (or None for exact), got {beam_width}")
        if not 0.0 <= prune_threshold < 1.0:
            raise ValueError(f"prune_threshold must be in [0, 1), got {prune_threshold}")
        self.name = name
        self.tokenizer = tokenizer
        self.trie = TokenByteTrie(tokenizer, name=name)
        rows = int(model.get_output_embeddings().weight.shape[0])
        if rows < self.trie.vocab_size:
            raise ValueError(f"{name} has {rows} output rows for {self.trie.vocab_size} token ids")
        self.model = model.eval()
        self.beam_width = beam_width
        self.log_prune = math.log(prune_threshold) if prune_threshold > 0 else -math.inf
        eos = tokenizer.eos_token_id if eos_token_id == "tokenizer" else eos_token_id
        self.eos_token_id: int | None = None if eos is None else int(eos)
        self.context = context_ids(tokenizer)
        self.forward_calls = 0
        self.token_steps = 0
        self._sorted_ids = torch.from_numpy(self.trie.sorted_ids)

    def _nodes(
        self, logits: torch.Tensor, paths: Sequence[list[int]], token_ids: Sequence[tuple[int, ...]]
    ) -> list[BeamNode]:
        """Next-token masses over the byte-spelling tokens and EOS, renormalised, per row.

        Shapes: logits (B, V') with V' >= V.
        """
        self.token_steps += len(paths)
        sorted_ids = self._sorted_ids.to(logits.device)
        kept = logits.index_select(1, sorted_ids).double().cpu()  # (B, N), byte order
        log_norm = torch.logsumexp(kept, 1, keepdim=True)
        eos_probs = [0.0] * len(paths)
        if self.eos_token_id is not None:
            eos = logits[:, self.eos_token_id : self.eos_token_id + 1].double().cpu()
            log_norm = torch.logaddexp(log_norm, eos)
            eos_probs = torch.exp(eos - log_norm)[:, 0].tolist()
        probs = F.pad(kept.sub_(log_norm).exp_(), (0, 1)).numpy()  # (B, N + 1)
        return [
            BeamNode(path, probs[row], eos_probs[row], token_ids[row])
            for row, path in enumerate(paths)
        ]

    def initial(self, keep_canonical_of: str | None = None) -> ByteLMState:
        """The state before any byte (after the dummy-prefix space, if the tokenizer adds one).

        Args:
            keep_canonical_of: the text about to be scored: its canonical tokenization's path
                is then always kept in the beam (see the module docstring). None: no path kept.

        Raises:
            ValueError: the canonical tokenization of `keep_canonical_of` does not spell its
                bytes with byte-spelling tokens.
        """
        plan = None if keep_canonical_of is None else self.canonical_ends(keep_canonical_of)
        start = -1 if self.trie.prepends_space else 0  # the dummy space is text byte -1
        state = self._root(self.context, start, plan)
        if self.trie.prepends_space:
            state = self.advance(state, 0x20)
        return state

    def initial_after(
        self, context_token_ids: Sequence[int], keep_ids: Sequence[int] | None = None
    ) -> ByteLMState:
        """The state after a context given as tokens (after `context`, i.e. BOS), before byte 0.

        The context's bytes are conditioned on through these tokens only (no other
        tokenization of them, no token across its end), and no dummy-prefix space follows.

        Args:
            context_token_ids: the context's tokens.
            keep_ids: tokens of the bytes about to be scored whose path the beam keeps
                (`token_plan`); None: no path kept.

        Raises:
            ValueError: `keep_ids` has a token that spells no bytes.
        """
        plan = None if keep_ids is None else self.token_plan(keep_ids)
        return self._root([*self.context, *context_token_ids], 0, plan)

    def initial_after_batch(self, contexts: Sequence[Sequence[int]]) -> list[ByteLMState]:
        """`initial_after` of each context, all on one token tree (to advance as lanes).

        A context as long as the model's sliding window gets a tree of its own (a shared tree's
        4-D mask cannot express the window); the scores are the same either way.
        """
        states: list[ByteLMState] = []
        tree: TokenTree | None = None
        window = sliding_window(self.model)
        for token_ids in contexts:
            ids = [*self.context, *token_ids]
            if tree is None or (window is not None and len(ids) > window):
                states.append(self._root(ids, 0, None))
                tree = states[-1].tree if tree is None else tree
                continue
            logits, path = tree.add_context(ids)
            states.append(self._state_at_root(tree, logits, path, 0, None))
        return states

    def _root(self, context: Sequence[int], start: int, plan: dict[int, int] | None) -> ByteLMState:
        tree = TokenTree(self.model, context)
        return self._state_at_root(tree, tree.root_logits, tree.root_path, start, plan)

    def _state_at_root(
        self,
        tree: TokenTree,
        logits: torch.Tensor,
        path: list[int],
        start: int,
        plan: dict[int, int] | None,
    ) -> ByteLMState:
        self.forward_calls += 1
        (node,) = self._nodes(logits[None], [path], [()])
        root = Hypothesis(node, b"", 0.0, canonical=True)
        return ByteLMState([root], start, tree, plan)

    def fork(self, state: ByteLMState, *, share_tree: bool = False) -> ByteLMState:
        """A copy of `state` to advance while `state` stays (`fork_state`).

        Its `canonical_ends` may be replaced (e.g. by the plan of what is scored next). With
        `share_tree` the copy keeps `state`'s cache: advance the copies with `advance_lanes`.

        Raises:
            ValueError: `state` was already advanced, or is stale.
        """
        return fork_state(state, share_tree=share_tree)

    def canonical_ends(self, text: str) -> dict[int, int]:
        """Where each token of `text`'s canonical tokenization ends (in text bytes) -> its id.

        Raises:
            ValueError: a canonical token that does not spell bytes (special, `<unk>`), or
                tokens whose bytes are not the text's (after the dummy-prefix space, if any).
        """
        return canonical_path.canonical_ends(self.tokenizer, self.trie, text, name=self.name)

    def token_plan(self, ids: Sequence[int], first_byte: int = 0) -> dict[int, int]:
        """Where each token of `ids` ends, in bytes counted from `first_byte` -> its id.

        Raises:
            ValueError: a token that does not spell bytes (special, `<unk>`).
        """
        return canonical_path.token_plan(self.trie, ids, first_byte, name=self.name)

    def next_byte_logprobs(self, state: ByteLMState) -> Floats:
        """Log P(b | bytes so far) for b = 0..255 and EOS (index 256); exp sums to 1.

        Shapes: returns (257,) float64.
        """
        reference = max(hypothesis.log_weight for hypothesis in state.hypotheses)
        masses = np.zeros(257, dtype=np.float64)
        for hypothesis in state.hypotheses:
            bounds = self.trie.bounds(hypothesis.pending)
            segment = hypothesis.node.sorted_probs[bounds[1] : bounds[257] + 1]
            sums = np.add.reduceat(segment, bounds[1:] - bounds[1])[:256]
            sums[bounds[1:257] == bounds[2:258]] = 0.0  # reduceat's empty ranges
            scale = math.exp(hypothesis.log_weight - reference)
            masses[:256] += scale * sums
            if not hypothesis.pending:
                masses[EOS_INDEX] += scale * hypothesis.node.eos_prob
        with np.errstate(divide="ignore"):
            return np.log(masses) - math.log(masses.sum())

    def _candidates(self, state: ByteLMState, byte: int) -> list[tuple[float, Hypothesis, int]]:
        """(log mass, hypothesis, token to commit or -1) of every way to extend by `byte`.

        A candidate is canonical when its parent is and it follows the plan: the canonical
        token ending at this byte is committed, or the pending bytes grow inside one.
        """
        plan = state.canonical_ends
        canonical_token = -1 if plan is None else plan.get(state.num_bytes, -1)
        found: list[tuple[float, Hypothesis, int]] = []
        for hypothesis in state.hypotheses:
            on_plan = plan is not None and hypothesis.canonical
            pending = hypothesis.pending + bytes([byte])
            bounds = self.trie.bounds(pending)
            probs = hypothesis.node.sorted_probs
            longer = float(probs[bounds[1] : bounds[257]].sum())
            if longer > 0:
                extended = Hypothesis(
                    hypothesis.node, pending, hypothesis.log_weight, on_plan and canonical_token < 0
                )
                found.append((hypothesis.log_weight + math.log(longer), extended, -1))
            for position in range(int(bounds[0]), int(bounds[1])):  # tokens spelling `pending`
                token = int(self.trie.sorted_ids[position])
                if probs[position] > 0:
                    log_weight = hypothesis.log_weight + math.log(probs[position])
                    committed = Hypothesis(
                        hypothesis.node, b"", log_weight, on_plan and token == canonical_token
                    )
                    found.append((log_weight, committed, token))
        return found

    def advance(self, state: ByteLMState, byte: int) -> ByteLMState:
        """The state after one more byte. Consumes `state` (its token tree moves on).

        Raises:
            ValueError: the byte has probability 0 under this model, or `state` was consumed
                or is stale.
        """
        (advanced,) = self.advance_lanes([state], [byte])
        return advanced

    def advance_lanes(
        self, states: Sequence[ByteLMState], next_bytes: Sequence[int]
    ) -> list[ByteLMState]:
        """Each state after its own next byte, with one forward per token tree for all of them.

        Every state is advanced as `advance` would alone. Consumes `states`; any other state
        on one of their trees may go stale (see `fork_state`).

        Raises:
            ValueError: a byte of probability 0, a state consumed, stale or given twice, or not
                one byte per state.
        """
        if len(states) != len(next_bytes):
            raise ValueError(f"one byte per state, got {len(states)} and {len(next_bytes)}")
        if len({id(state) for state in states}) != len(states):
            raise ValueError("a ByteLMState was given twice")
        kept_of = [self._kept(state, byte) for state, byte in zip(states, next_bytes, strict=True)]
        lanes_of: dict[int, list[int]] = {}  # tree -> the lanes on it
        for lane, state in enumerate(states):
            lanes_of.setdefault(id(state.tree), []).append(lane)
        advanced: dict[int, ByteLMState] = {}
        for lanes in lanes_of.values():
            moved = self._advance_tree([states[i] for i in lanes], [kept_of[i] for i in lanes])
            advanced.update(zip(lanes, moved, strict=True))
        return [advanced[lane] for lane in range(len(states))]

    def _advance_tree(
        self, states: list[ByteLMState], kept_of: list[list[tuple[float, Hypothesis, int]]]
    ) -> list[ByteLMState]:
        """The states of one tree after their kept candidates: one forward, one compaction."""
        tree = states[0].tree
        commits = [(h, token) for kept in kept_of for _, h, token in kept if token >= 0]
        committed = iter(self._commit(tree, commits))
        advanced = []
        for state, kept in zip(states, kept_of, strict=True):
            hypotheses = [
                Hypothesis(next(committed), b"", h.log_weight, h.canonical) if token >= 0 else h
                for _, h, token in kept
            ]
            advanced.append(
                ByteLMState(hypotheses, state.num_bytes + 1, tree, state.canonical_ends)
            )
        _compact(tree, [h for state in advanced for h in state.hypotheses])
        for state in advanced:
            state.tree_compactions = tree.compactions
        return advanced

    def _kept(self, state: ByteLMState, byte: int) -> list[tuple[float, Hypothesis, int]]:
        """The candidates after `byte` that the beam keeps; marks `state` consumed."""
        if state.consumed:
            raise ValueError("this ByteLMState was already advanced; keep the returned state")
        if state.stale:
            raise ValueError("this ByteLMState is stale: its token tree was compacted since")
        state.consumed = True
        found = self._candidates(state, byte)
        if not found:
            raise ValueError(
                f"{self.name} gives byte 0x{byte:02x} probability 0 after {state.num_bytes} bytes"
            )
        return prune_candidates(found, self.beam_width, self.log_prune)

    def _commit(self, tree: TokenTree, commits: list[tuple[Hypothesis, int]]) -> list[BeamNode]:
        """The nodes after each (hypothesis, token): one forward for all of them."""
        if not commits:
            return []
        logits, paths = tree.extend([h.node.path for h, _ in commits], [t for _, t in commits])
        self.forward_calls += 1
        return self._nodes(logits, paths, [(*h.node.token_ids, t) for h, t in commits])

    def score(
        self, data: bytes, *, include_eos: bool = False, keep_canonical: bool = True
    ) -> Floats:
        """Log P(byte_i | bytes before it) for every byte (then EOS, if asked).

        Args:
            data: the bytes to score.
            include_eos: also score EOS after them.
            keep_canonical: keep the canonical tokenization's path of `data` in the beam, so
                that the sum is at least its log-probability (see the module docstring).

        Shapes: returns (len(data),) float64, (len(data) + 1,) with include_eos.

        Raises:
            ValueError: keep_canonical with bytes that are not UTF-8 (a text has no canonical
                tokenization then), or a byte of probability 0.
        """
        state = self.initial(canonical_text(data) if keep_canonical else None)
        logprobs = []
        for byte in data:
            logprobs.append(self.next_byte_logprobs(state)[byte])
            state = self.advance(state, byte)
        if include_eos:
            logprobs.append(self.next_byte_logprobs(state)[EOS_INDEX])
        return np.asarray(logprobs, dtype=np.float64)


def _compact(tree: TokenTree, hypotheses: Sequence[Hypothesis]) -> None:
    """Drop the cache slots no hypothesis uses, once they are most of the cache."""
    nodes = list({id(h.node): h.node for h in hypotheses}.values())
    live = len({slot for node in nodes for slot in node.path})
    if tree.size > 2 * live + COMPACT_SLACK:
        for node, path in zip(nodes, tree.compact([node.path for node in nodes]), strict=True):
            node.path = path
