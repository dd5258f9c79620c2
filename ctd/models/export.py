"""Save a model and its tokenizer as a plain transformers checkpoint (safetensors)."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerFast

from ctd.models.loading import check_model_tokenizer_match, to_plain_model


def export_pretrained(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, out_dir: str | Path
) -> Path:
    """Write a folder that `AutoModelForCausalLM` and `AutoTokenizer.from_pretrained` load.

    Weights go to `model.safetensors` (sharded when large); a GGUF-loaded model is first
    re-built as a plain model.

    Args:
        model: The causal LM.
        tokenizer: Its fast tokenizer; it must fit the model's embedding.
        out_dir: The folder to write (created if missing).

    Returns:
        The folder.

    Raises:
        TypeError: The tokenizer is not a fast tokenizer.
        ValueError: The tokenizer does not fit the model.
    """
    check_model_tokenizer_match(model, tokenizer)
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    to_plain_model(model).save_pretrained(out_path)
    tokenizer.save_pretrained(out_path)
    return out_path
