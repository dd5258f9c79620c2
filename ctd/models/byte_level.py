"""Turn any fast tokenizer into a byte-level one: one token per UTF-8 byte, specials kept.

Ids 0..255 are the byte values (token strings in GPT-2's byte-to-unicode alphabet, so `Ġ` is
the space byte); the original added tokens follow with the same strings, and the chat template
and the bos/eos the original adds around a text are kept. No normalizer, no regex split, no
prefix space: `decode(encode(text)) == text` for every string.
"""

from __future__ import annotations

import itertools

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from ctd.models._vocab_bytes import byte_to_unicode
from ctd.models.loading import require_fast_tokenizer, wrap_backend_like

_ROLES = ("bos", "eos", "pad", "unk")


def _kept_tokens(tokenizer: PreTrainedTokenizerFast) -> list[AddedToken]:
    """The original's added tokens (in id order) and role tokens, without strip rules."""
    added = [token for _, token in sorted(tokenizer.added_tokens_decoder.items())]
    contents = {token.content for token in added}
    roles = [getattr(tokenizer, f"{role}_token") for role in _ROLES]
    extra = [str(token) for token in [*roles, *tokenizer.all_special_tokens] if token]
    kept = [(token.content, bool(token.special)) for token in added]
    kept += [(token, True) for token in dict.fromkeys(extra) if token not in contents]
    return [
        AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False)
        for content, special in kept
    ]


def _affixes(tokenizer: PreTrainedTokenizerFast) -> tuple[list[str], list[str]]:
    """The special tokens the original puts before and after a single text."""
    with_specials = tokenizer("a b", add_special_tokens=True)["input_ids"]
    without = tokenizer("a b", add_special_tokens=False)["input_ids"]
    for start in range(len(with_specials) - len(without) + 1):
        if with_specials[start : start + len(without)] == without:
            prefix = tokenizer.convert_ids_to_tokens(with_specials[:start])
            suffix = tokenizer.convert_ids_to_tokens(with_specials[start + len(without) :])
            return list(prefix), list(suffix)
    return [], []


def _post_processor(
    backend: Tokenizer, prefix: list[str], suffix: list[str]
) -> processors.TemplateProcessing | None:
    if not prefix and not suffix:
        return None
    specials = [(token, backend.token_to_id(token)) for token in dict.fromkeys(prefix + suffix)]
    return processors.TemplateProcessing(
        single=[*prefix, "$A", *suffix],
        pair=[*prefix, "$A", *suffix, "$B:1", *[f"{token}:1" for token in suffix]],
        special_tokens=specials,
    )


def byte_level_backend(added_tokens: list[AddedToken]) -> Tokenizer:
    """A `tokenizers.Tokenizer` with the 256 byte tokens as ids 0..255, then `added_tokens`."""
    chars = byte_to_unicode()
    vocab = {chars[byte]: byte for byte in range(256)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    for special, run in itertools.groupby(added_tokens, key=lambda token: token.special):
        if special:
            backend.add_special_tokens(list(run))
        else:
            backend.add_tokens(list(run))
    return backend


def to_byte_level(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """Make the byte-level counterpart of a fast tokenizer.

    Args:
        tokenizer: Any fast tokenizer.

    Returns:
        A fast tokenizer with ids 0..255 for the bytes, then the original added tokens with the
        same strings (lstrip/rstrip dropped, so no byte is lost), the original's bos/eos/pad/unk,
        chat template and the special tokens it adds around a text.

    Raises:
        TypeError: The tokenizer is not a fast tokenizer.
    """
    require_fast_tokenizer(tokenizer)
    backend = byte_level_backend(_kept_tokens(tokenizer))
    prefix, suffix = _affixes(tokenizer)
    post_processor = _post_processor(backend, prefix, suffix)
    if post_processor is not None:
        backend.post_processor = post_processor
    return wrap_backend_like(backend, tokenizer)
