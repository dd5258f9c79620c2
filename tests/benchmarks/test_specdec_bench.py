"""Speculative-decoding overhead: no hidden re-encoding, cache rebuilds or costly conversions.

Run for real: `.venv/bin/pytest tests/benchmarks/test_specdec_bench.py --benchmark-enable -s
-p no:cacheprovider -m benchmark`. With --benchmark-disable (CI) small cases run the same code.

1. Identical drafter (every draft accepted): a speculative run of B blocks is timed side by side
   with the calls it should cost, B x ((gamma + 1) single-token drafter steps + one
   (gamma + 1)-token target step), measured on the same CachedModels at the same cache lengths.
   Target: at most 1.1x in CPU time (wall time is recorded too).
2. Cross-tokenizer (TLI): a SmolLM2-135M-shaped random drafter (its real tokenizer) drafts for a
   small random target with Gemma 3's real 262k tokenizer; `SpecDecOutput.conversion_seconds`
   (id maps, scattering q into the target vocabulary, spelling target tokens in drafter ids)
   against `drafter_seconds`. Target: at most 10%, greedy and sampling (one test, both).
Missed targets are reported as `BenchmarkTargetWarning`, never as failing asserts. A benchmark
run records `figures/specdec_identical.json` and `figures/specdec_tli.json` for BENCHMARKS.md.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch
from bench_helpers import BenchRun, timed
from test_losses_bench import report_miss
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

from ctd.decoding import CachedModel
from ctd.specdec import SpecDecOutput, TokenIntersection, TorchRandom, speculative_generate

pytestmark = pytest.mark.benchmark
ASSETS = Path(__file__).resolve().parents[3] / "shared" / "assets" / "tokenizers"


def _llama(vocab: int, hidden: int, layers: int, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 3 // 2 * 2,
        num_hidden_layers=layers, num_attention_heads=max(hidden // 64, 2),
        num_key_value_heads=max(hidden // 192, 1), max_position_embeddings=2048,
        tie_word_embeddings=True,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def _expected_seconds(
    model: CachedModel, prompt: list[int], gamma: int, blocks: int
) -> tuple[float, float]:
    """Wall and CPU seconds of B x ((gamma+1) one-token steps + one (gamma+1)-token step), at
    the run's cache lengths."""
    model.prefill(torch.tensor([prompt[:-1]]))
    token = torch.tensor([[prompt[-1]]])

    def block() -> None:
        for _ in range(gamma + 1):
            model.step(token)
        model.rollback(gamma + 1)
        model.step(token.expand(1, gamma + 1))  # gamma + 1 new positions, as in the run

    wall = cpu = 0.0
    for _ in range(blocks):
        block_wall, block_cpu = timed(block)
        wall, cpu = wall + block_wall, cpu + block_cpu
    return wall, cpu


def test_identical_drafter_costs_only_its_calls(request: pytest.FixtureRequest) -> None:
    enabled = not request.config.getoption("benchmark_disable", default=True)
    vocab, hidden, layers, blocks = (8192, 384, 6, 24) if enabled else (256, 64, 2, 4)
    gamma = 4
    run = BenchRun()
    model = _llama(vocab, hidden, layers)
    target, drafter = CachedModel(model), CachedModel(model)
    prompt = list(range(10, 42))
    speculative_generate(target, drafter, prompt, gamma=gamma, max_new_tokens=gamma + 1)  # warm-up
    _expected_seconds(CachedModel(model), prompt, gamma, 1)
    ratios: dict[str, list[float]] = {"wall": [], "cpu": []}
    outs: list[SpecDecOutput] = []
    for _ in range(5 if enabled else 1):
        actual = timed(
            lambda: outs.append(
                speculative_generate(
                    target, drafter, prompt, gamma=gamma, max_new_tokens=blocks * (gamma + 1)
                )
            )
        )
        assert outs[-1].accepted_per_block == [gamma] * blocks
        expected = _expected_seconds(CachedModel(model), prompt, gamma, blocks)
        for index, clock in enumerate(ratios):
            ratios[clock].append(actual[index] / expected[index])
    ratio = statistics.median(ratios["cpu"])  # the less load-sensitive clock
    if enabled:
        shape = {"vocab": vocab, "hidden": hidden, "layers": layers, "gamma": gamma}
        figures = {f"{clock}_ratio": round(statistics.median(r), 3) for clock, r in ratios.items()}
        figures |= {f"{clock}_runs": [round(r, 3) for r in rs] for clock, rs in ratios.items()}
        run.save("specdec_identical", {**figures, **shape, "blocks": blocks})
        print(f"identical drafter: run / expected calls, CPU = {ratio:.3f} (5 runs: {ratios})")
        if ratio > 1.1:
            report_miss(f"speculative decoding costs {ratio:.2f}x its expected calls (> 1.1x)")


def _cross_models(enabled: bool) -> tuple[TokenIntersection, CachedModel, CachedModel, list[int]]:
    from transformers import AutoTokenizer

    target_tokenizer = AutoTokenizer.from_pretrained(ASSETS / "gemma3")
    drafter_tokenizer = AutoTokenizer.from_pretrained(ASSETS / "smollm2")
    target_vocab, drafter_vocab = len(target_tokenizer), len(drafter_tokenizer)
    torch.manual_seed(0)
    target_config = Gemma3TextConfig(
        vocab_size=target_vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, layer_types=None,
    )  # fmt: skip
    target = Gemma3ForCausalLM(target_config).eval()
    drafter = _llama(drafter_vocab, 576, 30 if enabled else 2, seed=1)
    vocabulary = TokenIntersection.from_tokenizers(
        drafter_tokenizer, target_tokenizer,
        drafter_vocab_size=drafter_vocab, target_vocab_size=target_vocab,
    )  # fmt: skip
    prompt = target_tokenizer("The quick brown fox jumps over the lazy dog.")["input_ids"]
    return vocabulary, CachedModel(target), CachedModel(drafter), prompt


@pytest.fixture(scope="module")
def cross_models(
    request: pytest.FixtureRequest,
) -> tuple[TokenIntersection, CachedModel, CachedModel, list[int]]:
    if not (ASSETS / "gemma3").is_dir():
        pytest.skip("needs ../shared/assets tokenizers")
    return _cross_models(not request.config.getoption("benchmark_disable", default=True))


def test_cross_tokenizer_conversion_share(
    request: pytest.FixtureRequest,
    cross_models: tuple[TokenIntersection, CachedModel, CachedModel, list[int]],
) -> None:
    enabled = not request.config.getoption("benchmark_disable", default=True)
    run = BenchRun()
    vocabulary, target, drafter, prompt = cross_models
    drafter_prompt = vocabulary.to_drafter_ids(prompt)
    new_tokens, seeds = (40, 3) if enabled else (8, 1)
    figures: dict[str, object] = {"gamma": 4, "new_tokens": new_tokens, "seeds": seeds}
    for label, temperature in (("greedy", 0.0), ("sampling", 1.0)):
        shares = []
        for seed in range(seeds):
            out = speculative_generate(
                target, drafter, prompt, gamma=4, max_new_tokens=new_tokens,
                temperature=temperature, vocabulary=vocabulary, drafter_prompt_ids=drafter_prompt,
                random=TorchRandom(seed),
            )  # fmt: skip
            shares.append(out.conversion_seconds / out.drafter_seconds)
        share = statistics.median(shares)
        figures[label] = {"temperature": temperature, "share": share, "shares": shares}
        if enabled:
            print(f"TLI conversion / drafter time at T={temperature}: {share:.3%} ({shares})")
            if share > 0.10:
                report_miss(f"cross-tokenizer conversion costs {share:.1%} of drafter time (> 10%)")
    if enabled:
        figures["shared_drafter_ids"] = vocabulary.shared_count
        figures["drafter_vocab"] = int(vocabulary.drafter_to_target.numel())
        figures["target_vocab"] = vocabulary.target_vocab_size
        run.save("specdec_tli", figures)
