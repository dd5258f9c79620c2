"""Fast Vocabulary Transfer: initialise a model's embeddings for a new tokenizer.

FVT (Gee et al., 2022, "Fast Vocabulary Transfer for Language Model Compression"): a new token
whose exact bytes are an old token copies that embedding; any other token is split into old
tokens (by the old tokenizer's model alone: no specials, no dummy prefix) and gets the mean of
their embeddings. Special tokens map by their string, then by role (bos/eos/pad/unk). What is
left is drawn from a normal distribution with the old embeddings' per-dimension mean and std.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from ctd.models._vocab_bytes import (
    VocabBytes,
    bytes_to_token_id,
    split_into_tokens,
    vocab_bytes,
)
from ctd.models.loading import (
    check_model_tokenizer_match,
    input_embedding_weight,
    require_fast_tokenizer,
    tokenizer_id_count,
)

logger = logging.getLogger(__name__)

InitMethod = Literal["copied", "averaged", "random"]
_ROLES = ("bos", "eos", "pad", "unk")


@dataclass(frozen=True)
class FVTMapping:
    """Which old embeddings make each new token's embedding.

    Attributes:
        sources: Index = new token id; the old token ids to average (empty: random init).
        methods: Index = new token id; how its embedding is made.
    """

    sources: list[list[int]]
    methods: list[InitMethod]

    @property
    def counts(self) -> dict[InitMethod, int]:
        """How many new tokens were copied, averaged and randomly initialised."""
        counted = Counter(self.methods)
        return {method: counted.get(method, 0) for method in ("copied", "averaged", "random")}


def _special_source(
    token: str,
    old_tokenizer: PreTrainedTokenizerFast,
    new_tokenizer: PreTrainedTokenizerFast,
) -> int | None:
    """Old id for a new special token: the same string, else the old token of the same role."""
    old_id = old_tokenizer.backend_tokenizer.token_to_id(token)
    if old_id is not None:
        return int(old_id)
    for role in _ROLES:
        if getattr(new_tokenizer, f"{role}_token") == token:
            role_id = getattr(old_tokenizer, f"{role}_token_id")
            if role_id is not None:
                return int(role_id)
    return None


def fvt_mapping(
    old_tokenizer: PreTrainedTokenizerFast, new_tokenizer: PreTrainedTokenizerFast
) -> FVTMapping:
    """Decide, for every id of `new_tokenizer`, which `old_tokenizer` embeddings it starts from.

    Args:
        old_tokenizer: The tokenizer the model was trained with.
        new_tokenizer: The tokenizer the model will use.

    Returns:
        The mapping; `mapping.counts` says how many tokens were copied, averaged or random.
    """
    require_fast_tokenizer(old_tokenizer)
    require_fast_tokenizer(new_tokenizer)
    old_table = vocab_bytes(old_tokenizer)
    new_table = vocab_bytes(new_tokenizer)
    old_ids_by_bytes = bytes_to_token_id(old_table)
    size = tokenizer_id_count(new_tokenizer)
    sources: list[list[int]] = []
    methods: list[InitMethod] = []
    for new_id in range(size):
        source, method = _sources_for(
            new_id, new_table, old_table, old_ids_by_bytes, old_tokenizer, new_tokenizer
        )
        sources.append(source)
        methods.append(method)
    return FVTMapping(sources, methods)


def _sources_for(
    new_id: int,
    new_table: VocabBytes,
    old_table: VocabBytes,
    old_ids_by_bytes: dict[bytes, int],
    old_tokenizer: PreTrainedTokenizerFast,
    new_tokenizer: PreTrainedTokenizerFast,
) -> tuple[list[int], InitMethod]:
    token = new_table.token_of[new_id] if new_id < len(new_table.token_of) else None
    if token is None:
        return [], "random"
    if new_table.is_special[new_id]:
        old_id = _special_source(token, old_tokenizer, new_tokenizer)
        return ([], "random") if old_id is None else ([old_id], "copied")
    data = new_table.bytes_of[new_id]
    assert data is not None  # every non-special token has bytes
    if data in old_ids_by_bytes:
        return [old_ids_by_bytes[data]], "copied"
    pieces = split_into_tokens(old_tokenizer, old_table, data)
    if pieces is None:
        return [], "random"
    return pieces, "averaged"


def fvt_embedding_matrix(
    old_weight: torch.Tensor, mapping: FVTMapping, *, generator: torch.Generator
) -> torch.Tensor:
    """Build the new embedding rows from old rows. Shapes: (V_old, d) -> (V_new, d)."""
    old_float = old_weight.detach().float()
    new_weight = torch.zeros(len(mapping.sources), old_float.shape[1])
    new_rows = [row for row, source in enumerate(mapping.sources) for _ in source]
    old_rows = [old_row for source in mapping.sources for old_row in source]
    scales = [1.0 / len(source) for source in mapping.sources for _ in source]
    if new_rows:
        weighted = old_float[old_rows] * torch.tensor(scales).unsqueeze(1)  # (N, d)
        new_weight.index_add_(0, torch.tensor(new_rows), weighted)
    random_rows = [row for row, source in enumerate(mapping.sources) if not source]
    if random_rows:
        mean, std = old_float.mean(0), old_float.std(0)  # (d,), (d,)
        noise = torch.randn(len(random_rows), old_float.shape[1], generator=generator)
        new_weight[random_rows] = mean + std * noise
    return new_weight.to(old_weight.dtype)


def _output_layer(model: PreTrainedModel) -> Any:
    """The output embedding (LM head) module, or None."""
    model_any: Any = model
    return model_any.get_output_embeddings()


def _output_is_tied(model: PreTrainedModel) -> bool:
    output = _output_layer(model)
    return output is None or output.weight is input_embedding_weight(model)


EmbeddingSide = Literal["input", "output", "bias"]


def replace_embeddings(
    model: PreTrainedModel,
    num_rows: int,
    build: Callable[[torch.Tensor, EmbeddingSide], torch.Tensor],
) -> None:
    """Resize a model's embeddings to `num_rows` rows made by `build(old_rows, side)`.

    `build` gets the old input matrix (V_old, d), then, for an untied head, the old output
    matrix, then an output bias as (V_old, 1); it returns the new rows (num_rows, ...). Tied
    embeddings stay tied (built once, from the input matrix).
    """
    tied = _output_is_tied(model)
    old_input = input_embedding_weight(model).detach().clone()
    output = _output_layer(model)
    old_output = None if tied or output is None else output.weight.detach().clone()
    old_bias = None if output is None or output.bias is None else output.bias.detach().clone()
    model.resize_token_embeddings(num_rows, mean_resizing=False)
    with torch.no_grad():
        input_embedding_weight(model).copy_(build(old_input, "input"))
        new_output = _output_layer(model)
        if old_output is not None and new_output is not None:
            new_output.weight.copy_(build(old_output, "output"))
        if old_bias is not None and new_output is not None and new_output.bias is not None:
            new_output.bias.copy_(build(old_bias.unsqueeze(1), "bias").squeeze(1))


def fvt_init_embeddings(
    model: PreTrainedModel,
    old_tokenizer: PreTrainedTokenizerFast,
    new_tokenizer: PreTrainedTokenizerFast,
    *,
    mapping: FVTMapping | None = None,
    seed: int = 0,
) -> PreTrainedModel:
    """Resize and initialise a model's input and output embeddings for a new tokenizer (FVT).

    Tied embeddings stay tied; untied output embeddings (and an output bias) get the same
    treatment. `config.vocab_size` and the bos/eos/pad ids of the config and generation config
    are updated. The copied/averaged/random counts are logged at INFO level.

    Args:
        model: A causal LM trained with `old_tokenizer`; changed in place.
        old_tokenizer: The tokenizer the model was trained with.
        new_tokenizer: The tokenizer the model will use.
        mapping: A precomputed `fvt_mapping(old_tokenizer, new_tokenizer)`.
        seed: Seed for the randomly initialised rows.

    Returns:
        The same model, resized.
    """
    check_model_tokenizer_match(model, old_tokenizer)
    mapping = mapping if mapping is not None else fvt_mapping(old_tokenizer, new_tokenizer)
    generator = torch.Generator().manual_seed(seed)
    replace_embeddings(
        model,
        len(mapping.sources),
        lambda old, side: fvt_embedding_matrix(old, mapping, generator=generator),
    )
    update_special_ids(model, old_tokenizer, new_tokenizer)
    logger.info("FVT: %s of %d new tokens", mapping.counts, len(mapping.sources))
    return model


def _remap_id(
    old_value: int | list[int] | None,
    old_tokenizer: PreTrainedTokenizerFast,
    new_tokenizer: PreTrainedTokenizerFast,
) -> int | list[int] | None:
    """Map an old special id (or list of ids) to the new tokenizer's id of the same string."""
    if old_value is None:
        return None
    if isinstance(old_value, list):
        mapped = [_remap_id(value, old_tokenizer, new_tokenizer) for value in old_value]
        kept = [value for value in mapped if isinstance(value, int)]
        return kept or None
    token = old_tokenizer.convert_ids_to_tokens(int(old_value))
    new_id = new_tokenizer.backend_tokenizer.token_to_id(token) if isinstance(token, str) else None
    return None if new_id is None else int(new_id)


def update_special_ids(
    model: PreTrainedModel,
    old_tokenizer: PreTrainedTokenizerFast,
    new_tokenizer: PreTrainedTokenizerFast,
) -> None:
    """Point bos/eos/pad ids of the config and generation config at the new tokenizer."""
    targets: list[Any] = [model.config]
    if getattr(model, "generation_config", None) is not None:
        targets.append(model.generation_config)
    for role in ("bos", "eos", "pad"):
        attribute = f"{role}_token_id"
        for target in targets:
            mapped = _remap_id(getattr(target, attribute, None), old_tokenizer, new_tokenizer)
            if mapped is None:
                mapped = getattr(new_tokenizer, attribute)
            setattr(target, attribute, mapped)
