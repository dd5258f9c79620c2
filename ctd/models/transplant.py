"""Tokenizer transplantation: embeddings of a base model for a donor model's vocabulary.

OMP (Goddard & Fernandes Neto, 2025, "Training-Free Tokenizer Transplantation via Orthogonal
Matching Pursuit"): *anchors* are the tokens whose bytes are identical in both vocabularies
(through `ctd.alignment.token_bytes`, so `▁x` and `Ġx` match); they are copied. Every other
donor token is written as a sparse combination of `k` anchors in the donor's embedding space
(`orthogonal_matching_pursuit`), and the same coefficients over the same anchors give its row in
the base model's space. Input and untied output embeddings each get their own codes.

The baselines `mean` (each new row the mean of the base rows) and `random` (the base rows'
per-dimension mean and std, seeded) copy the same anchors. `numbers="digits"` initialises numeral
tokens without an anchor from the mean of their base pieces (the paper's numerals caveat).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from ctd.models._vocab_bytes import bytes_to_token_id, split_into_tokens, vocab_bytes
from ctd.models.fvt import (
    EmbeddingSide,
    FVTMapping,
    _output_is_tied,
    _output_layer,
    _special_source,
    fvt_embedding_matrix,
    replace_embeddings,
    update_special_ids,
)
from ctd.models.loading import (
    check_model_tokenizer_match,
    input_embedding_weight,
    require_fast_tokenizer,
    tokenizer_id_count,
)
from ctd.models.omp import OMPResult, orthogonal_matching_pursuit

logger = logging.getLogger(__name__)

NUMBER_MODES = ("omp", "digits")
NumberMode = Literal["omp", "digits"]
BASELINES = ("mean", "random")
_NUMERAL = re.compile(rb" ?[0-9]+(?:[.,][0-9]+)*")
_APPLY_CHUNK = 2048


@dataclass(frozen=True)
class TransplantPlan:
    """Which new rows are copied from the base model and which must be made.

    Shapes: every tensor is (n,) long; `anchor_*` is the subset of `copied_*` with identical
    bytes (specials, matched by string or role, are copied but are no anchors).

    Attributes:
        num_rows: Rows of the new embedding matrix.
        copied_new, copied_base: New id -> base id of each copied row.
        anchor_new, anchor_base: The anchors (non-special tokens with identical bytes).
        approximate: New ids initialised by OMP or a baseline.
        digits: New id -> base ids of its pieces (numerals, with `numbers="digits"`).
        unanchored_numerals: Numeral tokens of the new vocabulary with no exact anchor.
    """

    num_rows: int
    copied_new: Tensor
    copied_base: Tensor
    anchor_new: Tensor
    anchor_base: Tensor
    approximate: Tensor
    digits: dict[int, list[int]] = field(default_factory=dict)
    unanchored_numerals: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """How many rows were copied (anchors among them), approximated, or made from digits."""
        return {
            "copied": len(self.copied_new),
            "anchors": len(self.anchor_new),
            "approximated": len(self.approximate),
            "digits": len(self.digits),
        }


def transplant_plan(
    base_tokenizer: PreTrainedTokenizerFast,
    new_tokenizer: PreTrainedTokenizerFast,
    *,
    num_rows: int | None = None,
    numbers: NumberMode = "omp",
) -> TransplantPlan:
    """Decide, for every row of the new vocabulary, whether it is copied or must be made.

    Args:
        base_tokenizer: The tokenizer the base model was trained with.
        new_tokenizer: The tokenizer the model will use (the donor's).
        num_rows: Rows of the new matrix (default: the new tokenizer's id count).
        numbers: `digits`: numerals without an anchor take the mean of their base pieces.

    Returns:
        The plan.
    """
    if numbers not in NUMBER_MODES:
        raise ValueError(f"numbers must be one of {', '.join(NUMBER_MODES)}, got {numbers!r}")
    require_fast_tokenizer(base_tokenizer)
    require_fast_tokenizer(new_tokenizer)
    base_table, new_table = vocab_bytes(base_tokenizer), vocab_bytes(new_tokenizer)
    base_ids_by_bytes = bytes_to_token_id(base_table)
    rows = tokenizer_id_count(new_tokenizer) if num_rows is None else num_rows
    plan = _PlanRows()
    for new_id in range(rows):
        token = new_table.token_of[new_id] if new_id < len(new_table.token_of) else None
        data = new_table.bytes_of[new_id] if token is not None else None
        if token is not None and new_table.is_special[new_id]:
            source = _special_source(token, base_tokenizer, new_tokenizer)
            if source is not None:
                plan.copied.append((new_id, source))
                continue
        elif data is not None and data in base_ids_by_bytes:
            plan.copied.append((new_id, base_ids_by_bytes[data]))
            plan.anchors.append((new_id, base_ids_by_bytes[data]))
            continue
        if data is not None and _NUMERAL.fullmatch(data):
            plan.unanchored.append(data.decode("utf-8"))
            pieces = split_into_tokens(base_tokenizer, base_table, data)
            if numbers == "digits" and pieces:
                plan.digits[new_id] = pieces
                continue
        plan.approximate.append(new_id)
    return plan.to_plan(rows)


@dataclass
class _PlanRows:
    """What `transplant_plan` decides, row by row, before it becomes a `TransplantPlan`."""

    copied: list[tuple[int, int]] = field(default_factory=list)
    anchors: list[tuple[int, int]] = field(default_factory=list)
    approximate: list[int] = field(default_factory=list)
    digits: dict[int, list[int]] = field(default_factory=dict)
    unanchored: list[str] = field(default_factory=list)

    def to_plan(self, num_rows: int) -> TransplantPlan:
        """The frozen plan: (new id, base id) pairs as two (n,) long tensors each."""

        def ids(pairs: list[tuple[int, int]], side: int) -> Tensor:
            return torch.tensor([pair[side] for pair in pairs], dtype=torch.long)

        return TransplantPlan(
            num_rows,
            ids(self.copied, 0),
            ids(self.copied, 1),
            ids(self.anchors, 0),
            ids(self.anchors, 1),
            torch.tensor(self.approximate, dtype=torch.long),
            self.digits,
            self.unanchored,
        )


def _fill_known_rows(new: Tensor, old: Tensor, plan: TransplantPlan) -> Tensor:
    """Copy the copied rows and make the digit rows (mean of their base pieces), in place."""
    new[plan.copied_new] = old[plan.copied_base].to(new.dtype)
    for new_id, pieces in plan.digits.items():
        new[new_id] = old[pieces].mean(0).to(new.dtype)
    return new


def apply_codes(old: Tensor, plan: TransplantPlan, codes: OMPResult) -> Tensor:
    """New rows: copied, digits, and OMP codes over the base anchors.

    Shapes: old (V_old, d) -> (num_rows, d); codes (N, k), N = len(plan.approximate).
    """
    old_float = old.detach().float()
    new = torch.zeros(plan.num_rows, old.shape[1])
    anchors = old_float[plan.anchor_base]  # (A, d)
    for start in range(0, len(plan.approximate), _APPLY_CHUNK):
        part = slice(start, start + _APPLY_CHUNK)
        coefficients = codes.coefficients[part].float().unsqueeze(1)  # (c, 1, k)
        rows = torch.bmm(coefficients, anchors[codes.indices[part]]).squeeze(1)  # (c, d)
        new[plan.approximate[part]] = rows
    return _fill_known_rows(new, old_float, plan).to(old.dtype)


def _check_request(
    base: PreTrainedModel,
    donor: PreTrainedModel,
    base_tokenizer: PreTrainedTokenizerFast,
    donor_tokenizer: PreTrainedTokenizerFast,
    ks: list[int],
) -> None:
    check_model_tokenizer_match(base, base_tokenizer)
    try:
        check_model_tokenizer_match(donor, donor_tokenizer)
    except ValueError as error:
        raise ValueError(f"the donor tokenizer does not fit the donor model: {error}") from None
    width = input_embedding_weight(donor).shape[1]
    if max(ks) > width:
        raise ValueError(
            f"k={max(ks)} is larger than the donor's embedding width {width}: no more than "
            f"{width} anchors can be linearly independent"
        )
    if min(ks) < 1:
        raise ValueError(f"k must be at least 1, got {min(ks)}")


def omp_codes(
    donor: PreTrainedModel,
    plan: TransplantPlan,
    k: int | list[int],
    *,
    candidates: int | None = 128,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[EmbeddingSide, dict[int, OMPResult]]:
    """OMP codes of the rows to make, over the anchors, in the donor's input and output spaces.

    The output codes are the input codes when the donor's head is tied. Several `k` share one
    run (OMP is greedy). Raises ValueError when there are no anchors or fewer than k.
    """
    ks = [k] if isinstance(k, int) else list(k)
    anchor_count = len(plan.anchor_new)
    if anchor_count == 0:
        raise ValueError(
            "no anchor tokens: the base and donor tokenizers share no token with identical bytes"
        )
    if max(ks) > anchor_count:
        raise ValueError(
            f"k={max(ks)} is larger than the {anchor_count} anchor tokens both vocabularies share"
        )
    donor_input = input_embedding_weight(donor).detach()
    head = _output_layer(donor)
    spaces = {"input": donor_input}
    if not _output_is_tied(donor):
        spaces["output"] = head.weight.detach()
    codes: dict[EmbeddingSide, dict[int, OMPResult]] = {}
    for side, matrix in spaces.items():
        codes[side] = orthogonal_matching_pursuit(  # type: ignore[index]
            matrix[plan.approximate],
            matrix[plan.anchor_new],
            ks,
            candidates=candidates if candidates is None else min(candidates, anchor_count),
            batch_size=batch_size,
            progress=progress,
        )
    codes.setdefault("output", codes["input"])
    return codes


def omp_init_embeddings(
    base: PreTrainedModel,
    donor: PreTrainedModel,
    base_tokenizer: PreTrainedTokenizerFast,
    donor_tokenizer: PreTrainedTokenizerFast,
    k: int = 64,
    *,
    candidates: int | None = 128,
    numbers: NumberMode = "omp",
    plan: TransplantPlan | None = None,
    codes: dict[EmbeddingSide, dict[int, OMPResult]] | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> PreTrainedModel:
    """Give `base` the donor's vocabulary: anchors copied, every other row by OMP.

    Tied embeddings stay tied; an untied head gets codes from the donor's head (or its input
    embeddings when the donor is tied), an output bias the head's coefficients.
    `config.vocab_size` and the bos/eos/pad ids are updated (as `fvt_init_embeddings` does).

    Args:
        base: A causal LM trained with `base_tokenizer`; changed in place.
        donor: A causal LM that uses `donor_tokenizer` (only its embeddings are read).
        base_tokenizer: The base model's tokenizer.
        donor_tokenizer: The donor's tokenizer, the one the result will use.
        k: Anchors per new token.
        candidates: Each token searches its this many most correlated anchors (None: all,
            exact OMP). Cost per token: A x d to screen, candidates^2 x d for their Gram matrix,
            candidates x k^2 / 2 for the picks. On held-out anchors of SmolLM2 -> Gemma-3, 128
            candidates fit the base rows as well as 256 at k = 8 to 64 (results/transplant.md).
        numbers: `digits`: numeral tokens without an anchor from the mean of their base pieces.
        plan: A precomputed `transplant_plan` (with `num_rows` = the donor's embedding rows).
        codes: Precomputed `omp_codes(donor, plan, k)`.
        batch_size: Tokens per OMP batch.
        progress: Show a progress bar.

    Returns:
        The same base model, resized to the donor's embedding rows.

    Raises:
        ValueError: A tokenizer that does not fit its model, no anchors, k above the anchor
            count or the donor's width.
    """
    _check_request(base, donor, base_tokenizer, donor_tokenizer, [k])
    rows = input_embedding_weight(donor).shape[0]
    if plan is None:
        plan = transplant_plan(base_tokenizer, donor_tokenizer, num_rows=rows, numbers=numbers)
    if codes is None:
        codes = omp_codes(
            donor, plan, k, candidates=candidates, batch_size=batch_size, progress=progress
        )

    def build(old: Tensor, side: EmbeddingSide) -> Tensor:
        return apply_codes(old, plan, codes["input" if side == "input" else "output"][k])

    replace_embeddings(base, plan.num_rows, build)
    update_special_ids(base, base_tokenizer, donor_tokenizer)
    logger.info("OMP transplant (k=%d): %s of %d rows", k, plan.counts, plan.num_rows)
    return base


def baseline_init_embeddings(
    model: PreTrainedModel,
    old_tokenizer: PreTrainedTokenizerFast,
    new_tokenizer: PreTrainedTokenizerFast,
    method: str,
    *,
    seed: int = 0,
    plan: TransplantPlan | None = None,
) -> PreTrainedModel:
    """Anchors copied, every other row `mean` (of the old rows) or `random` (seeded normal).

    `random` draws each row from the old rows' per-dimension mean and std (as FVT's random rows).
    The model is changed in place and returned; config ids are updated.
    """
    if method not in BASELINES:
        raise ValueError(f"method must be one of {', '.join(BASELINES)}, got {method!r}")
    check_model_tokenizer_match(model, old_tokenizer)
    plan = plan if plan is not None else transplant_plan(old_tokenizer, new_tokenizer)
    generator = torch.Generator().manual_seed(seed)
    sources: list[list[int]] = [[] for _ in range(plan.num_rows)]
    for new_id, base_id in zip(plan.copied_new.tolist(), plan.copied_base.tolist(), strict=True):
        sources[new_id] = [base_id]
    mapping = FVTMapping(sources, ["random"] * plan.num_rows)

    def build(old: Tensor, side: EmbeddingSide) -> Tensor:
        if method == "random":
            new = fvt_embedding_matrix(old, mapping, generator=generator)
            return _fill_known_rows(new, old, plan)
        new = old.detach().float().mean(0).expand(plan.num_rows, -1).clone()
        return _fill_known_rows(new, old.detach().float(), plan).to(old.dtype)

    replace_embeddings(model, plan.num_rows, build)
    update_special_ids(model, old_tokenizer, new_tokenizer)
    logger.info("%s init: %s of %d rows", method, plan.counts, plan.num_rows)
    return model


def init_report(plan: TransplantPlan) -> dict[str, Any]:
    """Counts and the unanchored numerals of a plan, for logs and `--json`."""
    return {**plan.counts, "unanchored_numerals": list(plan.unanchored_numerals)}
