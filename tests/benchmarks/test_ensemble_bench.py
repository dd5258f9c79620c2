"""Ensemble costs: lockstep generation vs its members, and the byte level's cost per byte.

Run for real: `.venv/bin/pytest tests/benchmarks/test_ensemble_bench.py --benchmark-enable -s
-p no:cacheprovider -m benchmark`. With --benchmark-disable (CI) small cases run the same code.

1. Lockstep: greedy KV-cached generation of N tokens by a 2-member ensemble, timed side by side
   (interleaved, medians of 5) with each member generating the same N tokens alone. Target: the
   ensemble costs at most 1.1x the sum of its members (the pooling is O(M V) per token).
2. Byte level: seconds per byte of the byte-level ensemble of two random models with different
   tokenizers (a SmolLM2-shaped tokenizer and Gemma 3's 262k one when ../shared is there), next
   to each member's `ByteLM` alone and each member's plain token-level scoring (one cached step
   per canonical token), all on the same bytes. Side by side, each member's `ByteLM` as it was
   before the token tree (`BEFORE_TREE`: one cache per hypothesis, deep-copied at each branch,
   one forward per committed token; read from git, skipped without the history). Reported, no
   target.
Missed targets are reported as `BenchmarkTargetWarning`, never as failing asserts.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from test_losses_bench import report_miss
from transformers import LlamaConfig, LlamaForCausalLM

from ctd.decoding import CachedModel, generate
from ctd.ensemble import ByteEnsemble, ByteLM, LockstepEnsemble, context_ids

pytestmark = pytest.mark.benchmark
ASSETS = Path(__file__).resolve().parents[3] / "shared" / "assets" / "tokenizers"
TEXT = "The package manager keeps a list of the installed files; remove it with care."
BEFORE_TREE = "ec95c57"  # the last commit whose ByteLM kept one KV cache per hypothesis


def _llama(vocab: int, hidden: int, layers: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=max(hidden // 64, 2),
        num_key_value_heads=max(hidden // 192, 1), max_position_embeddings=2048,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def _seconds(run: Callable[[], object]) -> float:
    begin = time.perf_counter()
    run()
    return time.perf_counter() - begin


def test_lockstep_generation_costs_its_members(request: pytest.FixtureRequest) -> None:
    enabled = not request.config.getoption("benchmark_disable", default=True)
    vocab, hidden, layers, new = (8192, 384, 6, 64) if enabled else (256, 64, 2, 4)
    models = [_llama(vocab, hidden, layers, seed) for seed in (0, 1)]
    ensemble = LockstepEnsemble(models)
    prompt = torch.arange(10, 26)[None]
    alone = [CachedModel(model) for model in models]
    ensemble.generate(prompt, 2)  # warm-up
    ratios = []
    for _ in range(5 if enabled else 1):
        together = _seconds(lambda: ensemble.generate(prompt, new))
        members = sum(_seconds(lambda m=m: generate(m, prompt, new)) for m in alone)  # type: ignore[misc]
        ratios.append(together / members)
    ratio = statistics.median(ratios)
    if enabled:
        print(f"lockstep ensemble / sum of members per token: {ratio:.3f} (5 runs: {ratios})")
        if ratio > 1.1:
            report_miss(f"a lockstep ensemble costs {ratio:.2f}x the sum of its members (> 1.1x)")


def _tokenizers() -> list[object]:
    from transformers import AutoTokenizer

    return [AutoTokenizer.from_pretrained(ASSETS / name) for name in ("smollm2", "gemma3")]


def _token_level_seconds(model: LlamaForCausalLM, tokenizer: object, text: str) -> float:
    """One cached step per canonical token: what scoring the text token by token costs."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    cached = CachedModel(model)

    def run() -> None:
        cached.prefill(torch.tensor([context_ids(tokenizer)]))
        for token in ids:
            cached.step(torch.tensor([[token]]))

    return _seconds(run)


def _byte_lm_before_tree() -> Any | None:
    """`ctd.ensemble.byte_lm` at BEFORE_TREE as a module (None without the git history)."""
    root = Path(__file__).resolve().parents[2]
    shown = subprocess.run(
        ["git", "show", f"{BEFORE_TREE}:ctd/ensemble/byte_lm.py"],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if shown.returncode != 0:
        return None
    path = Path(tempfile.mkdtemp()) / "byte_lm_before_tree.py"
    path.write_text(shown.stdout)
    spec = importlib.util.spec_from_file_location("byte_lm_before_tree", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_byte_level_cost_per_byte(request: pytest.FixtureRequest) -> None:
    if not (ASSETS / "gemma3").is_dir():
        pytest.skip("needs ../shared/assets tokenizers")
    enabled = not request.config.getoption("benchmark_disable", default=True)
    hidden, layers, beam = (256, 4, 8) if enabled else (32, 1, 2)
    text = TEXT if enabled else TEXT[:12]
    tokenizers = _tokenizers()
    models = [_llama(len(tok), hidden, layers, seed) for seed, tok in enumerate(tokenizers)]  # type: ignore[arg-type]
    members = [ByteLM(m, t, beam_width=beam) for m, t in zip(models, tokenizers, strict=True)]
    before = _byte_lm_before_tree() if enabled else None  # two more 262k tries: not in CI
    pairs = list(zip(models, tokenizers, strict=True))
    old = [] if before is None else [before.ByteLM(m, t, beam_width=beam) for m, t in pairs]
    data = text.encode()
    ByteEnsemble(members).score(data[:4])  # warm-up
    rows = {
        "ensemble": _seconds(lambda: ByteEnsemble(members).score(data)),
        **{f"bytelm_{i}": _seconds(lambda m=m: m.score(data)) for i, m in enumerate(members)},  # type: ignore[misc]
        **{f"before_tree_{i}": _seconds(lambda m=m: m.score(data)) for i, m in enumerate(old)},  # type: ignore[misc]
        **{
            f"tokens_{i}": _token_level_seconds(m, t, text)
            for i, (m, t) in enumerate(zip(models, tokenizers, strict=True))
        },
    }
    if enabled:
        per_byte = {name: f"{1000 * seconds / len(data):.1f} ms" for name, seconds in rows.items()}
        print(f"byte level, beam {beam}, {len(data)} bytes, per byte: {per_byte}")
        for i, member in enumerate(old):
            same = abs(float(member.score(data).sum() - members[i].score(data).sum()))
            speedup = rows[f"before_tree_{i}"] / rows[f"bytelm_{i}"]
            print(f"member {i}: token tree {speedup:.2f}x faster than before, |dlogp| {same:.1e}")
