#!/usr/bin/env python3
"""Analytic alpha and tau of cross-tokenizer drafters on one fixed target text (results/drafter.md).

    drafter_cross_analytic.py --target GEMMA --drafter untrained=DIR --drafter alm=DIR \
        --prompts eval_prompts.jsonl --outputs SPECDEC.json --gamma 3 > analytic.json

The text is the `outputs` of a greedy `ctd specdec --json` run (the target's own greedy answers:
greedy speculative decoding is lossless), re-encoded with the target's tokenizer. Every drafter
is scored on the same answers at T = 0 and T = 1 with `ctd.specdec.evaluate.analytic_acceptance`
(TLI: the drafter's distribution on the shared tokens, after the answer respelt in its tokens),
one teacher-forced pass instead of a speculative decoding run; tau = (1 - a^(g+1)) / (1 - a).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from ctd.decoding.cached import CachedModel
from ctd.metrics.acceptance import expected_block_efficiency
from ctd.models.loading import load_causal_lm, load_tokenizer
from ctd.specdec.cli import _vocabulary
from ctd.specdec.evaluate import (
    SpecDecSettings,
    analytic_acceptance,
    encode_prompt,
    read_prompt_records,
)


class _MemoTarget:
    """The target's prefill, computed once per input (the drafters share its logits)."""

    def __init__(self, model: CachedModel) -> None:
        self.model, self.device, self.cache = model, model.device, {}

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        key = tuple(ids[0].tolist())
        if key not in self.cache:
            self.cache[key] = self.model.prefill(ids)
            self.model.reset()
        return self.cache[key]

    def reset(self) -> None:
        """Nothing to reset: the cache is kept."""


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--drafter", action="append", required=True, help="NAME=FOLDER")
    parser.add_argument("--prompts", required=True)
    parser.add_argument("--outputs", required=True, help="a greedy `ctd specdec --json` report")
    parser.add_argument("--gamma", type=int, default=3)
    parser.add_argument(
        "--wait-for", help="score the last drafter only once this file exists (a running fit)"
    )
    return parser.parse_args()


def main() -> None:
    """Print one JSON object: a row per drafter and temperature."""
    args = _arguments()
    outputs = json.loads(Path(args.outputs).read_text(encoding="utf-8"))["outputs"]
    records = read_prompt_records(args.prompts, len(outputs))
    target_tokenizer = load_tokenizer(args.target)
    target_model: Any = load_causal_lm(args.target, dtype=torch.float32)
    target = _MemoTarget(CachedModel(target_model))
    prompts = [encode_prompt(target_tokenizer, record) for record in records]
    answers = [target_tokenizer(text, add_special_tokens=False)["input_ids"] for text in outputs]
    chat = None if getattr(target_tokenizer, "chat_template", None) else False
    rows = []
    for index, (name, folder) in enumerate(item.split("=", 1) for item in args.drafter):
        while args.wait_for and index == len(args.drafter) - 1 and not Path(args.wait_for).exists():
            time.sleep(10)
        tokenizer, model = load_tokenizer(folder), load_causal_lm(folder, dtype=torch.float32)
        vocabulary = _vocabulary(args, (target_model, model), (target_tokenizer, tokenizer))
        drafter_prompts = [encode_prompt(tokenizer, record, chat=chat) for record in records]
        for temperature in (0.0, 1.0):
            begin = time.perf_counter()
            alpha = analytic_acceptance(
                target, CachedModel(model), prompts, answers,  # type: ignore[arg-type]
                SpecDecSettings(args.gamma, temperature=temperature),
                vocabulary=vocabulary, drafter_prompts=drafter_prompts,
            )  # fmt: skip
            rows.append({
                "drafter": name, "temperature": temperature, "alpha": alpha,
                "tau": expected_block_efficiency(min(alpha, 1.0), args.gamma),
                "seconds": round(time.perf_counter() - begin, 1),
            })  # fmt: skip
    positions = sum(len(answer) for answer in answers)
    print(json.dumps({"gamma": args.gamma, "answers": len(answers), "positions": positions,
                      "text": args.outputs, "rows": rows}))  # fmt: skip


if __name__ == "__main__":
    main()
