"""Distillation data: a target model answers prompts, one JSONL record per answer, resumably.

Prompts are JSONL records with chat `messages` (the target answers the conversation up to its
last user turn; trailing assistant turns are dropped) or a plain `prompt`, and an optional `id`
(default: the record's index in the file). Each output record carries the `id`, the `prompt`
exactly as the target saw it (rendered with its chat template), the `answer` text, the
conversation `messages` ending with the answer (what the drafter data module renders with the
chat template), `num_new_tokens` and `finish_reason` (`stop` at an EOS id, else `length`). A
target without a chat template answers plain prompts only; its records add `text` = prompt +
answer, which the data module then reads instead of `messages`.

Resumable: records are appended one line each, flushed per batch; a rerun skips the ids already
in the output. A last line cut off by a killed run (no newline, or not JSON) is dropped and
redone, so an interrupted run loses and duplicates nothing. Decoding is `ctd.decoding.generate`
on a KV cache, batched with left padding. Goel et al. 2024 (arXiv 2403.00858) train drafters on
such target-generated answers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ctd.data.readers import _chat_from_messages

__all__ = ["GenerationSettings", "Prompt", "completed_ids", "generate_answers", "read_prompts"]


@dataclass(frozen=True)
class GenerationSettings:
    """How the target decodes (temperature 0 = greedy)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        from ctd.decoding import check_sampling_args

        check_sampling_args(self.temperature, self.top_p)
        if self.max_new_tokens < 1:
            raise ValueError(f"max new tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class Prompt:
    """One prompt: its id and the conversation the target answers."""

    id: str
    messages: list[dict[str, str]]
    plain: str | None = None
    """The `prompt` text of a plain record (None for a chat)."""


def _prompt_from_record(record: Any, where: str, index: int) -> Prompt:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object")
    record_id = record.get("id", index)
    if not isinstance(record_id, (str, int)) or isinstance(record_id, bool):
        raise ValueError(f"{where}: 'id' must be a string or an integer")
    if isinstance(record.get("prompt"), str):
        text = record["prompt"]
        return Prompt(str(record_id), [{"role": "user", "content": text}], plain=text)
    if "messages" not in record:
        raise ValueError(f"{where}: expected a 'messages' list or a 'prompt' string")
    chat = _chat_from_messages(record["messages"], where)
    messages = chat["messages"] if chat else []
    while messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    if not messages or messages[-1]["role"] != "user":
        raise ValueError(f"{where}: the conversation has no user turn to answer")
    return Prompt(str(record_id), messages)


def read_prompts(path: str | Path) -> list[Prompt]:
    """The prompts of a JSONL file, in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not a prompt record, or an id used twice (both named).
    """
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        lines = [(number, line) for number, line in enumerate(handle, 1) if line.strip()]
    for index, (number, line) in enumerate(lines):
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
        prompt = _prompt_from_record(record, where, index)
        if prompt.id in seen:
            raise ValueError(f"{where}: id {prompt.id!r} is also on line {seen[prompt.id]}")
        seen[prompt.id] = number
        prompts.append(prompt)
    return prompts


def completed_ids(output: str | Path) -> set[str]:
    """Ids already answered in `output`; a cut-off last line is removed from the file.

    A run killed while writing leaves a last line without its newline (or one that is not
    JSON): it is truncated away so that the record is generated again.

    Raises:
        ValueError: a bad line that is not the last one (the file is not ours to repair).
    """
    path = Path(output)
    if not path.exists():
        return set()
    data = path.read_bytes()
    lines = data.split(b"\n")  # the piece after the last newline is b"" or a cut-off record
    ids: set[str] = set()
    offset = 0
    for number, raw in enumerate(lines[:-1], 1):
        try:
            record = json.loads(raw)
            ids.add(str(record["id"]))
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            if number == len(lines) - 1 and not lines[-1]:
                break  # the last complete-looking line is broken: drop it too
            raise ValueError(f"{path}:{number}: not a generated record; fix or remove it") from None
        offset += len(raw) + 1
    if offset < len(data):
        with path.open("r+b") as handle:
            handle.truncate(offset)
    return ids


def _render(tokenizer: Any, prompt: Prompt) -> tuple[str, bool]:
    """The text the target sees and whether it came from the chat template."""
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            prompt.messages, add_generation_prompt=True, tokenize=False
        )
        return str(rendered), True
    if prompt.plain is None:
        raise ValueError(
            f"prompt {prompt.id!r} is a chat but the target's tokenizer has no chat template"
        )
    return prompt.plain, False


def _encode(tokenizer: Any, prompts: Sequence[Prompt]) -> tuple[list[str], list[list[int]]]:
    texts, ids = [], []
    for prompt in prompts:
        text, templated = _render(tokenizer, prompt)
        texts.append(text)
        ids.append(tokenizer(text, add_special_tokens=not templated).input_ids)
    return texts, ids


def check_context(
    prompt_ids: Sequence[list[int]], prompts: Sequence[Prompt], context: int | None, extra: int
) -> None:
    """Every prompt plus `extra` new tokens fits the target's context.

    Raises:
        ValueError: naming the first prompt that does not fit.
    """
    for ids, prompt in zip(prompt_ids, prompts, strict=True):
        if not ids:
            raise ValueError(f"prompt {prompt.id!r} renders to no tokens")
        if context is not None and len(ids) + extra > context:
            raise ValueError(
                f"prompt {prompt.id!r} has {len(ids)} tokens; with {extra} new tokens it "
                f"exceeds the target's context of {context}"
            )


def left_pad(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and their attention mask. Shapes: -> (B, T), (B, T)."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[index, width - len(row) :] = 1
    return ids, mask


def _answers(
    new_tokens: torch.Tensor, stop_ids: list[int], tokenizer: Any
) -> Iterator[tuple[str, int, str]]:
    """(answer text, new token count, finish reason) per row. Shapes: new_tokens (B, N)."""
    for row in new_tokens.tolist():
        ends = [i for i, token in enumerate(row) if token in stop_ids]
        kept = row[: ends[0]] if ends else row
        text = tokenizer.decode(kept, skip_special_tokens=True)
        yield text, len(kept) + (1 if ends else 0), "stop" if ends else "length"


def _record(prompt: Prompt, text: str, answer: tuple[str, int, str], chat: bool) -> dict[str, Any]:
    answer_text, count, reason = answer
    record: dict[str, Any] = {"id": prompt.id, "prompt": text, "answer": answer_text}
    record["messages"] = [*prompt.messages, {"role": "assistant", "content": answer_text}]
    record |= {"num_new_tokens": count, "finish_reason": reason}
    if not chat:
        record["text"] = text + answer_text
    return record


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    output: str | Path,
    settings: GenerationSettings,
    *,
    progress: bool = True,
) -> dict[str, int]:
    """Answer the prompts whose ids `output` lacks, appending one record per line.

    Returns counts: `written`, `skipped` (already there), `total`.

    Raises:
        ValueError: a prompt that does not fit the context or cannot be rendered (before any
            decoding), or a damaged output file.
    """
    from tqdm.auto import tqdm

    from ctd.decoding import CachedModel, eos_ids, generate

    done = completed_ids(output)
    todo = [prompt for prompt in prompts if prompt.id not in done]
    texts, prompt_ids = _encode(tokenizer, todo)
    context = getattr(model.config, "max_position_embeddings", None)
    check_context(prompt_ids, todo, context, settings.max_new_tokens)
    stop_ids = eos_ids(model.generation_config.eos_token_id or tokenizer.eos_token_id)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    generator = torch.Generator(device=model.device).manual_seed(settings.seed)
    cached = CachedModel(model)
    chat = bool(getattr(tokenizer, "chat_template", None))
    bar = tqdm(total=len(todo), desc="generate", unit="answer", disable=not progress)
    with Path(output).open("a", encoding="utf-8") as handle:
        for start in range(0, len(todo), settings.batch_size):
            batch = slice(start, start + settings.batch_size)
            ids, mask = left_pad(prompt_ids[batch], pad_id)
            new_tokens = generate(
                cached,
                ids.to(model.device),
                settings.max_new_tokens,
                attention_mask=mask.to(model.device),
                temperature=settings.temperature,
                top_p=settings.top_p,
                eos_token_id=stop_ids,
                pad_token_id=pad_id,
                generator=generator,
            )
            answers = _answers(new_tokens.cpu(), stop_ids, tokenizer)
            for prompt, text, answer in zip(todo[batch], texts[batch], answers, strict=True):
                handle.write(json.dumps(_record(prompt, text, answer, chat)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            bar.update(len(todo[batch]))
    bar.close()
    return {"written": len(todo), "skipped": len(prompts) - len(todo), "total": len(prompts)}
