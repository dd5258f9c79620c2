"""Drafters for speculative decoding, built from their target on the target's tokenizer.

* `trimmed_drafter`: the target's first k transformer blocks plus its embeddings, final norm and
  head (a layer-trimmed copy; tied embeddings stay tied where the target ties them). Layer
  trimming is the initialisation Goel et al. 2024 (arXiv 2403.00858) replace by pretraining; it
  gives a drafter that already shares the target's embedding space.
* `fresh_drafter`: a randomly initialised small model of the target's architecture and
  vocabulary (a fresh config: fewer layers, narrower).

Both return plain transformers models; `export_pretrained` saves them with the tokenizer.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

__all__ = ["block_list_name", "fresh_drafter", "trimmed_config", "trimmed_drafter"]


def block_list_name(model: nn.Module) -> str:
    """The qualified name of the model's list of transformer blocks (e.g. `model.layers`).

    Raises:
        ValueError: no `nn.ModuleList` with `config.num_hidden_layers` entries.
    """
    num_layers = int(model.config.num_hidden_layers)  # type: ignore[union-attr, arg-type]
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            return str(name)
    raise ValueError(
        f"{type(model).__name__} has no list of {num_layers} transformer blocks to trim"
    )


def trimmed_config(config: PretrainedConfig, num_layers: int) -> PretrainedConfig:
    """A copy of `config` with `num_layers` blocks; per-layer lists (e.g. `layer_types`) cut.

    Raises:
        ValueError: `num_layers` outside [1, config.num_hidden_layers].
    """
    total = int(config.num_hidden_layers)
    if not 1 <= num_layers <= total:
        raise ValueError(f"--layers must be in [1, {total}] for this target, got {num_layers}")
    trimmed = copy.deepcopy(config)
    for key, value in list(vars(trimmed).items()):
        if isinstance(value, list) and len(value) == total and key != "architectures":
            setattr(trimmed, key, value[:num_layers])
    trimmed.num_hidden_layers = num_layers
    return trimmed


def _kept_state(target: nn.Module, prefix: str, num_layers: int) -> dict[str, torch.Tensor]:
    """The target's parameters and buffers except those of blocks >= `num_layers`."""
    kept = {}
    for key, value in target.state_dict().items():
        if key.startswith(prefix + "."):
            index = int(key[len(prefix) + 1 :].split(".", 1)[0])
            if index >= num_layers:
                continue
        kept[key] = value
    return kept


def _ties_embeddings(model: nn.Module) -> bool:
    output = model.get_output_embeddings()  # type: ignore[operator]
    return output is not None and output.weight is model.get_input_embeddings().weight  # type: ignore[operator]


def trimmed_drafter(target: PreTrainedModel, num_layers: int) -> PreTrainedModel:
    """The target's first `num_layers` blocks with its embeddings, final norm and head.

    Every kept tensor is copied bit for bit; the drafter ties its input and output embeddings
    exactly when the target does.

    Raises:
        ValueError: `num_layers` out of range, or the target's weights do not fill the drafter
            (an architecture whose blocks this function cannot find).
    """
    config = trimmed_config(target.config, num_layers)
    config.tie_word_embeddings = _ties_embeddings(target)
    prefix = block_list_name(target)
    drafter: Any = AutoModelForCausalLM.from_config(config, dtype=target.dtype)  # type: ignore[no-untyped-call]
    drafter = drafter.to(target.device)
    state = _kept_state(target, prefix, num_layers)
    result = drafter.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if not _is_tied_output(drafter, key)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"cannot trim {type(target).__name__}: missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
    drafter.tie_weights()
    result_model: PreTrainedModel = drafter.eval()
    return result_model


def _is_tied_output(model: nn.Module, key: str) -> bool:
    output = model.get_output_embeddings()  # type: ignore[operator]
    return _ties_embeddings(model) and output is not None and key.endswith("lm_head.weight")


def fresh_drafter(
    target: PreTrainedModel,
    *,
    num_layers: int,
    hidden_size: int | None = None,
    intermediate_size: int | None = None,
    num_attention_heads: int | None = None,
    seed: int = 0,
) -> PreTrainedModel:
    """A randomly initialised model of the target's architecture and vocabulary, smaller.

    Unset widths are the target's; `num_key_value_heads` is capped at the head count and
    `head_dim` follows `hidden_size / num_attention_heads`. Embeddings are tied when the
    target's config ties them.

    Raises:
        ValueError: `num_layers` outside [1, the target's layer count], or a hidden size not
            divisible by the head count.
    """
    config = trimmed_config(target.config, num_layers)
    updates: dict[str, Any] = {
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_attention_heads": num_attention_heads,
    }
    for key, value in updates.items():
        if value is not None:
            setattr(config, key, value)
    heads = int(config.num_attention_heads)
    if config.hidden_size % heads:
        raise ValueError(f"hidden size {config.hidden_size} is not divisible by {heads} heads")
    config.num_key_value_heads = min(int(getattr(config, "num_key_value_heads", heads)), heads)
    while heads % config.num_key_value_heads:
        config.num_key_value_heads -= 1
    if hasattr(config, "head_dim"):
        config.head_dim = config.hidden_size // heads
    torch.manual_seed(seed)
    drafter: Any = AutoModelForCausalLM.from_config(config, dtype=target.dtype)  # type: ignore[no-untyped-call]
    fresh: PreTrainedModel = drafter.eval()
    return fresh
