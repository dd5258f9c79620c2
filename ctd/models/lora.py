"""LoRA students through peft: adapters injected in place, merged into plain weights on export.

The adapters are injected with `peft.inject_adapter_in_model`, so the student stays the same
Hugging Face class (no `PeftModel` wrapper): `base_model`, `get_output_embeddings` and the
trainers' forward passes are unchanged. Only the adapters and, for a new tokenizer, the input
and output embeddings train. `merged_copy` folds W + (alpha / r) B A into each base layer and
drops the adapters, giving a model that plain transformers saves and reloads.
Reference: Hu et al. 2021, LoRA (arXiv 2106.09685); ALM (arXiv 2503.20083) trains LoRA r = 64.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Sequence
from typing import Any, TypeVar

from torch import nn

PEFT_INSTALL_HINT = 'pip install "ctd-distill[lora]" (or pip install peft)'
ADAPTER_NAME = "default"
M = TypeVar("M", bound=nn.Module)


def _require_peft() -> None:
    if importlib.util.find_spec("peft") is None:
        raise ImportError(f"LoRA students need the `peft` package: {PEFT_INSTALL_HINT}")


def add_lora(
    model: nn.Module,
    *,
    r: int,
    alpha: float,
    target_modules: Sequence[str],
    dropout: float = 0.0,
    train_embeddings: bool = True,
) -> nn.Module:
    """Inject LoRA adapters into `model` in place and freeze everything else.

    Args:
        model: A Hugging Face causal LM.
        r: The adapters' rank.
        alpha: Their scale numerator (the update is alpha / r * B A).
        target_modules: Names of the linear layers to adapt (e.g. q_proj, v_proj).
        dropout: Dropout on the adapters' input.
        train_embeddings: Keep the input and output embeddings trainable (a new tokenizer's
            embeddings must learn).

    Returns:
        The same model; its adapters start at zero (B = 0), so outputs are unchanged.

    Raises:
        ImportError: peft is not installed.
        ValueError: r < 1, or no module matches `target_modules`.
    """
    _require_peft()
    from peft import LoraConfig, inject_adapter_in_model

    if r < 1:
        raise ValueError(f"lora.r must be at least 1, got {r}")
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = sorted(set(target_modules) - names)
    if missing:
        raise ValueError(f"lora.target_modules {missing} match no module of the model")
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,  # type: ignore[arg-type]  # a float scale works
        lora_dropout=dropout,
        target_modules=list(target_modules),
    )
    inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name)
    if train_embeddings:
        for getter in ("get_input_embeddings", "get_output_embeddings"):
            module: Any = getattr(model, getter)()
            if module is not None:
                module.weight.requires_grad_(True)
    return model


def has_lora(model: nn.Module) -> bool:
    """Whether `model` holds peft LoRA layers."""
    if importlib.util.find_spec("peft") is None:
        return False
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(module, BaseTunerLayer) for module in model.modules())


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into its base layer and put the base layer back, in place."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    tuned = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, BaseTunerLayer)
    ]
    for name, module in tuned:
        module.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.get_base_layer())
    return model


def merged_copy(model: M) -> M:
    """`model` itself when it has no LoRA layers, else a merged copy (`model` keeps them)."""
    if not has_lora(model):
        return model
    copied = copy.deepcopy(model)
    merge_lora(copied)
    return copied
