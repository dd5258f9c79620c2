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
Missed targets are reported as `BenchmarkTargetWarning`, never as failing asserts. A benchmark
run records `figures/ensemble_lockstep.json` and `figures/ensemble_bytes.json` for BENCHMARKS.md.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from bench_helpers import BenchRun, timed
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


def test_lockstep_generation_costs_its_members(request: pytest.FixtureRequest) -> None:
    enabled = not request.config.getoption("benchmark_disable", default=True)
    vocab, hidden, layers, new = (8192, 384, 6, 64) if enabled else (256, 64, 2, 4)
    run = BenchRun()
    models = [_llama(vocab, hidden, layers, seed) for seed in (0, 1)]
    ensemble = LockstepEnsemble(models)
    prompt = torch.arange(10, 26)[None]
    alone = [CachedModel(model) for model in models]
    ensemble.generate(prompt, 2)  # warm-up
    ratios: dict[str, list[float]] = {"wall": [], "cpu": []}
    for _ in range(5 if enabled else 1):
        together = timed(lambda: ensemble.generate(prompt, new))
        members = [timed(lambda m=m: generate(m, prompt, new)) for m in alone]  # type: ignore[misc]
        for index, clock in enumerate(ratios):
            ratios[clock].append(together[index] / sum(member[index] for member in members))
    ratio = statistics.median(ratios["cpu"])  # the less load-sensitive clock
    if enabled:
        shape = {"vocab": vocab, "hidden": hidden, "layers": layers, "new_tokens": new}
        figures = {f"{clock}_ratio": round(statistics.median(r), 3) for clock, r in ratios.items()}
        figures |= {f"{clock}_runs": [round(r, 3) for r in rs] for clock, rs in ratios.items()}
        run.save("ensemble_lockstep", {**figures, **shape})
        print(f"lockstep ensemble / sum of members per token, CPU: {ratio:.3f} ({ratios})")
        if ratio > 1.1:
            report_miss(f"a lockstep ensemble costs {ratio:.2f}x the sum of its members (> 1.1x)")


def _tokenizers() -> list[object]:
    from transformers import AutoTokenizer

    return [AutoTokenizer.from_pretrained(ASSETS / name) for name in ("smollm2", "gemma3")]


def _token_level_seconds(
    model: LlamaForCausalLM, tokenizer: object, text: str
) -> tuple[float, float]:
    """Wall and CPU seconds of one cached step per canonical token: what scoring the text
    token by token costs."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    cached = CachedModel(model)

    def run() -> None:
        cached.prefill(torch.tensor([context_ids(tokenizer)]))
        for token in ids:
            cached.step(torch.tensor([[token]]))

    return timed(run)


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
    run = BenchRun()
    text = TEXT if enabled else TEXT[:12]
    tokenizers = _tokenizers()
    models = [_llama(len(tok), hidden, layers, seed) for seed, tok in enumerate(tokenizers)]  # type: ignore[arg-type]
    members = [ByteLM(m, t, beam_width=beam) for m, t in zip(models, tokenizers, strict=True)]
    before = _byte_lm_before_tree() if enabled else None  # two more 262k tries: not in CI
    pairs = list(zip(models, tokenizers, strict=True))
    old = [] if before is None else [before.ByteLM(m, t, beam_width=beam) for m, t in pairs]
    data = text.encode()
    ByteEnsemble(members).score(data[:4])  # warm-up
    logprobs: dict[str, float] = {}

    def score(name: str, member: Any) -> Callable[[], None]:
        return lambda: logprobs.update({name: float(member.score(data).sum())})

    rows = {
        "ensemble": timed(lambda: ByteEnsemble(members).score(data)),
        **{f"bytelm_{i}": timed(score(f"bytelm_{i}", m)) for i, m in enumerate(members)},
        **{f"before_tree_{i}": timed(score(f"before_tree_{i}", m)) for i, m in enumerate(old)},
        **{
            f"tokens_{i}": _token_level_seconds(m, t, text)
            for i, (m, t) in enumerate(zip(models, tokenizers, strict=True))
        },
    }
    if not enabled:
        return
    per_byte = {name: f"{1000 * wall / len(data):.1f} ms" for name, (wall, _) in rows.items()}
    print(f"byte level, beam {beam}, {len(data)} bytes, per byte (wall): {per_byte}")
    score_gaps = [
        abs(logprobs[f"before_tree_{i}"] - logprobs[f"bytelm_{i}"]) for i in range(len(old))
    ]
    print(f"token tree vs before, |dlogp| per member: {score_gaps}")
    figures: dict[str, Any] = {"num_bytes": len(data), "beam": beam, "hidden": hidden}
    figures |= {name: round(wall, 3) for name, (wall, _) in rows.items()}
    figures |= {f"{name}_cpu": round(cpu, 3) for name, (_, cpu) in rows.items()}
    figures |= {"layers": layers, "members": ["smollm2", "gemma3"]}
    figures["before_tree_abs_logprob_gap"] = score_gaps
    run.save("ensemble_bytes", figures)
