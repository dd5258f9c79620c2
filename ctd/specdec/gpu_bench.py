"""Prepared GPU run: wall-clock speculative-decoding speed-ups in bf16, one JSON object.

    python -m ctd.specdec.gpu_bench --target T --drafter D --prompts FILE.jsonl \
        [--gammas 1,3,5] [--temperatures 0,1] [--max-new-tokens 128] [--limit 16] \
        [--dtype bfloat16] [--device cuda] [--output speedups.json]

`--target random:smollm2` builds a randomly initialised model of SmolLM2-135M's shape (for a
machine without the weights); `--drafter identical` drafts with the target itself (tau = gamma
+ 1, so the speed-up measures pure system overhead) and `--drafter trim:K` with the target's
first K blocks (`ctd.models.trim.trimmed_drafter`). Every (gamma, temperature) cell is one
`evaluate_drafter` run: plain decoding and speculative decoding of the same prompts, both timed
end to end (each run synchronises on every emitted token, so wall time is GPU time).
Importable and runnable on the CPU (`--device cpu`) for a dry run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

__all__ = ["build_parser", "main"]

SMOLLM2_SHAPE: dict[str, Any] = {
    "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
    "tie_word_embeddings": True, "rope_theta": 100000.0, "eos_token_id": 2, "bos_token_id": 1,
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the GPU benchmark."""
    parser = argparse.ArgumentParser(prog="python -m ctd.specdec.gpu_bench")
    parser.add_argument("--target", default="random:smollm2", help="folder or random:smollm2")
    parser.add_argument("--drafter", default="trim:6", help="folder, identical or trim:K")
    parser.add_argument("--prompts", default=None, help="JSONL (default: synthetic prompts)")
    parser.add_argument("--gammas", default="1,3,5")
    parser.add_argument("--temperatures", default="0,1")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--output", default=None, help="also write the JSON object here")
    return parser


def _target(spec: str, dtype: Any) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    from ctd.models.loading import load_causal_lm

    if spec == "random:smollm2":
        import torch

        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPE)).to(dtype).eval()
    return load_causal_lm(spec, dtype=dtype)


def _drafter(spec: str, target: Any, dtype: Any) -> Any:
    from ctd.models.loading import load_causal_lm
    from ctd.models.trim import trimmed_drafter

    if spec == "identical":
        return target
    if spec.startswith("trim:"):
        return trimmed_drafter(target, int(spec.split(":", 1)[1]))
    return load_causal_lm(spec, dtype=dtype)


def _prompts(args: argparse.Namespace, target_path: str) -> list[list[int]]:
    from ctd.specdec.evaluate import encode_prompt, read_prompt_records

    if args.prompts is None or target_path.startswith("random:"):
        return [[1, *range(100 + 7 * i, 132 + 7 * i)] for i in range(args.limit)]
    from ctd.models.loading import load_tokenizer

    tokenizer = load_tokenizer(target_path)
    return [encode_prompt(tokenizer, r) for r in read_prompt_records(args.prompts, args.limit)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every (gamma, temperature) cell; returns the report."""
    import torch

    from ctd.decoding.cached import CachedModel
    from ctd.specdec.evaluate import SpecDecSettings, evaluate_drafter

    dtype = getattr(torch, args.dtype)
    target_model = _target(args.target, dtype).to(args.device)
    drafter_model = _drafter(args.drafter, target_model, dtype).to(args.device)
    target, drafter = CachedModel(target_model), CachedModel(drafter_model)
    prompts = _prompts(args, args.target)
    eos = None if args.target.startswith("random:") else target_model.generation_config.eos_token_id
    cells = []
    for gamma in (int(g) for g in args.gammas.split(",")):
        for temperature in (float(t) for t in args.temperatures.split(",")):
            settings = SpecDecSettings(gamma, args.max_new_tokens, temperature)
            report = evaluate_drafter(target, drafter, prompts, settings, eos_token_id=eos)
            report.pop("output_ids")
            cells.append(report)
    return {
        "target": args.target,
        "drafter": args.drafter,
        "dtype": args.dtype,
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "target_parameters": sum(p.numel() for p in target_model.parameters()),
        "drafter_parameters": sum(p.numel() for p in drafter_model.parameters()),
        "cells": cells,
    }


def main(argv: list[str] | None = None) -> int:
    """Run and print one JSON object on the last line."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    report = run(args)
    text = json.dumps(report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
