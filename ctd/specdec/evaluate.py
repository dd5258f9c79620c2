"""Judge a drafter by speculative decoding on prompts: alpha, tau, MBSU, tokens/s, outputs.

`evaluate_drafter` runs plain target decoding (the baseline) and speculative decoding on the same
prompts and returns one flat report; `ctd specdec` prints it. It also gives the analytic
prediction: alpha = mean of sum_v min(p, q) over the generated answers in one teacher-forced pass
of both models, and tau = (1 - alpha^(gamma+1)) / (1 - alpha). With another tokenizer (TLI) q is
the drafter's draft distribution on target ids, read after the answer respelt in drafter tokens
as the decoder feeds it, so alpha is the same per-target-token acceptance probability.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ctd.decoding.cached import CachedModel
from ctd.decoding.generate import generate
from ctd.decoding.sampling import warp_probs
from ctd.metrics.acceptance import (
    expected_block_efficiency,
    measured_acceptance,
    memory_bound_speedup,
)
from ctd.specdec.decode import SpecDecOutput, speculative_generate
from ctd.specdec.verify import TorchRandom
from ctd.specdec.vocab import DraftVocabulary, SharedVocabulary

__all__ = ["SpecDecSettings", "encode_prompt", "evaluate_drafter", "read_prompt_records"]


@dataclass(frozen=True)
class SpecDecSettings:
    """How to decode: draft length, sampling, length limit, seed."""

    gamma: int
    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


def read_prompt_records(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """JSONL records with chat `messages` or a plain `prompt`, in file order.

    Raises:
        ValueError: a line is not JSON or has neither field; the file holds no record.
    """
    records: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number} is not JSON ({error.msg})") from None
            if not isinstance(record, dict) or not ("messages" in record or "prompt" in record):
                raise ValueError(f"{path}:{number} has neither 'messages' nor 'prompt'")
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    if not records:
        raise ValueError(f"{path} holds no prompt")
    return records


def encode_prompt(tokenizer: Any, record: dict[str, Any], *, chat: bool | None = None) -> list[int]:
    """Token ids of one prompt record, rendered as `ctd generate` renders it.

    Chat `messages` (trailing assistant turns dropped) and, when the tokenizer has a chat
    template, a plain `prompt` (as one user turn) go through the chat template with the
    generation prompt; without a template a plain `prompt` is encoded as text (special tokens
    added). (`ctd.data.generate` has the same rule but importing it pulls in Lightning.)
    `chat=False` encodes a plain `prompt` as text even when the tokenizer has a template: a
    drafter with another tokenizer then reads the text its template-less target reads.

    Raises:
        ValueError: no user turn, or chat messages for a tokenizer without a chat template.
    """
    chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat
    if "messages" in record:
        messages = list(record["messages"])
        while messages and messages[-1].get("role") == "assistant":
            messages.pop()
        if not messages:
            raise ValueError("a prompt record has no user message")
    else:
        messages = [{"role": "user", "content": str(record["prompt"])}]
    if chat:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if "messages" in record:
        raise ValueError("a chat prompt needs a tokenizer with a chat template")
    return list(tokenizer(str(record["prompt"]))["input_ids"])


def _baseline(
    target: CachedModel, prompt: Sequence[int], settings: SpecDecSettings, eos: Any, seed: int
) -> tuple[list[int], float]:
    """Plain target decoding of one prompt: (new ids, seconds)."""
    ids = torch.tensor([list(prompt)], device=target.device)
    generator = torch.Generator(device=target.device).manual_seed(seed)
    begin = time.perf_counter()
    new = generate(
        target, ids, settings.max_new_tokens, temperature=settings.temperature,
        top_p=settings.top_p, eos_token_id=eos, generator=generator,
    )  # fmt: skip
    return new[0].tolist(), time.perf_counter() - begin


def _drafter_context(
    vocabulary: DraftVocabulary, drafter_prompt: Sequence[int], answer: Sequence[int]
) -> tuple[list[int], list[int]]:
    """The drafter's ids for prompt + answer and, per answer token, the index predicting it.

    The answer's target tokens reach the drafter as the decoder feeds them: each respelt on its
    own (`to_drafter_ids`, the identity for a shared tokenizer).
    """
    ids, positions = list(drafter_prompt), []
    for token in answer:
        positions.append(len(ids) - 1)
        ids.extend(vocabulary.to_drafter_ids([token]))
    return ids, positions


def analytic_acceptance(
    target: CachedModel,
    drafter: CachedModel,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    settings: SpecDecSettings,
    *,
    vocabulary: DraftVocabulary | None = None,
    drafter_prompts: Sequence[Sequence[int]] | None = None,
) -> float:
    """Mean teacher-forced acceptance sum_v min(p, q) over the answers' target positions.

    p is the target's warped distribution; q the drafter's draft distribution mapped onto target
    ids (`vocabulary.to_target_probs(vocabulary.draft_probs(...))`, for TLI the drafter
    restricted to the shared tokens), read after the drafter's own context (`_drafter_context`).
    """
    vocabulary = SharedVocabulary() if vocabulary is None else vocabulary
    drafter_prompts = prompts if drafter_prompts is None else drafter_prompts
    values = []
    for prompt, drafter_prompt, answer in zip(prompts, drafter_prompts, answers, strict=True):
        if not answer:
            continue
        ids = torch.tensor([[*prompt, *answer]], device=target.device)
        target_logits = target.prefill(ids)[0, len(prompt) - 1 : -1].float()
        drafter_ids, positions = _drafter_context(vocabulary, drafter_prompt, answer)
        drafter_logits = drafter.prefill(torch.tensor([drafter_ids], device=drafter.device))
        q = vocabulary.to_target_probs(
            vocabulary.draft_probs(
                drafter_logits[0, positions].float(), settings.temperature, settings.top_p
            )
        )
        p = warp_probs(target_logits, temperature=settings.temperature, top_p=settings.top_p)
        values.append(torch.minimum(p, q.to(p.device)).sum(-1))
    target.reset()
    drafter.reset()
    return float(torch.cat(values).mean()) if values else float("nan")


def _summary(runs: list[SpecDecOutput], settings: SpecDecSettings) -> dict[str, float]:
    accepted = [a for run in runs for a in run.accepted_per_block]
    drafted = [d for run in runs for d in run.drafted_per_block]
    drafter_seconds = sum(run.drafter_seconds for run in runs)
    target_seconds = sum(run.target_seconds for run in runs)
    per_draft = drafter_seconds / max(sum(drafted), 1)
    per_verify = target_seconds / max(len(accepted), 1)
    cost_ratio = per_draft / per_verify if per_verify > 0 else float("nan")
    tau = sum(len(run.token_ids) for run in runs) / max(len(accepted), 1)
    return {
        "alpha": measured_acceptance(accepted, drafted),
        "draft_acceptance": sum(accepted) / max(sum(drafted), 1),
        "tau": tau,
        "blocks": len(accepted),
        "cost_ratio": cost_ratio,
        "mbsu": memory_bound_speedup(tau, settings.gamma, cost_ratio),
        "conversion_share": sum(run.conversion_seconds for run in runs)
        / max(drafter_seconds, 1e-12),
    }


def _timed_runs(
    target: CachedModel,
    drafter: CachedModel,
    prompts: Sequence[Sequence[int]],
    drafter_prompts: Sequence[Sequence[int]],
    settings: SpecDecSettings,
    eos_token_id: int | Sequence[int] | None,
    vocabulary: DraftVocabulary | None,
) -> tuple[list[list[int]], float, list[Any], float]:
    """Per prompt, plain target decoding then speculative decoding, each timed."""
    baseline_ids, baseline_seconds, runs, seconds = [], 0.0, [], 0.0
    for index, (prompt, drafter_prompt) in enumerate(zip(prompts, drafter_prompts, strict=True)):
        ids, elapsed = _baseline(target, prompt, settings, eos_token_id, settings.seed + index)
        baseline_ids.append(ids)
        baseline_seconds += elapsed
        begin = time.perf_counter()
        runs.append(
            speculative_generate(
                target,
                drafter,
                prompt,
                gamma=settings.gamma,
                max_new_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
                eos_token_id=eos_token_id,
                vocabulary=vocabulary,
                drafter_prompt_ids=drafter_prompt,
                random=TorchRandom(settings.seed + index),
            )  # fmt: skip
        )
        seconds += time.perf_counter() - begin
    return baseline_ids, baseline_seconds, runs, seconds


def evaluate_drafter(
    target: CachedModel,
    drafter: CachedModel,
    prompts: Sequence[Sequence[int]],
    settings: SpecDecSettings,
    *,
    eos_token_id: int | Sequence[int] | None = None,
    vocabulary: DraftVocabulary | None = None,
    drafter_prompts: Sequence[Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Baseline and speculative decoding of every prompt; the report (ids under `output_ids`).

    The first prompt is decoded once before timing (lazy initialisation off the clock).
    """
    shared = vocabulary is None or isinstance(vocabulary, SharedVocabulary)
    drafter_prompts = prompts if drafter_prompts is None else drafter_prompts
    warm = SpecDecSettings(settings.gamma, min(4, settings.max_new_tokens), 0.0, 1.0)
    _baseline(target, prompts[0], warm, eos_token_id, 0)
    speculative_generate(
        target, drafter, prompts[0], gamma=settings.gamma, max_new_tokens=warm.max_new_tokens,
        vocabulary=vocabulary, drafter_prompt_ids=drafter_prompts[0],
    )  # fmt: skip
    baseline_ids, baseline_seconds, runs, seconds = _timed_runs(
        target, drafter, prompts, drafter_prompts, settings, eos_token_id, vocabulary
    )
    output_ids = [run.token_ids for run in runs]
    new_tokens = sum(len(ids) for ids in output_ids)
    report: dict[str, Any] = {
        "gamma": settings.gamma,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_new_tokens": settings.max_new_tokens,
        "prompts": len(prompts),
        "cross_tokenizer": not shared,
        **_summary(runs, settings),
        "new_tokens": new_tokens,
        "tokens_per_s": new_tokens / seconds,
        "baseline_tokens_per_s": sum(len(ids) for ids in baseline_ids) / baseline_seconds,
        "output_ids": output_ids,
    }
    report["speedup"] = report["tokens_per_s"] / report["baseline_tokens_per_s"]
    if settings.temperature == 0:
        report["matches_baseline"] = output_ids == baseline_ids
    alpha = analytic_acceptance(
        target, drafter, prompts, output_ids, settings,
        vocabulary=vocabulary, drafter_prompts=drafter_prompts,
    )  # fmt: skip
    report["analytic_alpha"] = alpha
    report["analytic_tau"] = (
        None if alpha != alpha else expected_block_efficiency(min(alpha, 1.0), settings.gamma)
    )
    return report
