"""K-way alignment cost: one 3-way `align_many_batch` vs two pairwise `align_batch` calls.

Run for real: `.venv/bin/pytest tests/benchmarks/test_align_many_bench.py --benchmark-enable -s
-m benchmark -p no:cacheprovider` (1,000 texts of ~2 KB; Llama-3, Gemma-3 and Qwen2 tokens,
encoded once, not timed). Two settings as in test_alignment_bench.py: plain text, and each
tokenizer's BOS/EOS template with paired specials (what `ctd fit` feeds; Qwen2 adds no BOS, so
no special is paired on all three sides). Multi-teacher distillation with two teachers needs
the 3-way alignment where single-teacher training would run two pairwise ones. With
--benchmark-disable (CI) it runs on 40 texts once and checks that the 3-way chunks coarsen
both pairwise ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from bench_helpers import BenchRun, timed
from test_alignment_bench import SHARED, corpus_texts

from ctd.alignment import align_batch, align_many_batch, encode_batch

pytestmark = pytest.mark.benchmark
NAMES = ("llama3", "gemma3", "qwen2")
SETTINGS = {"plain": (False, False), "template": (True, True)}  # (add_special_tokens, pair)


def test_three_way_alignment_vs_two_pairwise(benchmark) -> None:  # type: ignore[no-untyped-def]
    if not all((SHARED / "tokenizers" / name).exists() for name in NAMES):
        pytest.skip("../shared absent: the benchmark needs the Llama-3/Gemma-3/Qwen2 tokenizers")
    from tokenizers import Tokenizer

    run = BenchRun()
    tokenizers = [
        Tokenizer.from_file(str(SHARED / "tokenizers" / name / "tokenizer.json")) for name in NAMES
    ]
    texts = corpus_texts(40 if benchmark.disabled else 1000)
    cases = {}
    for name, (add_special_tokens, pair_specials) in SETTINGS.items():
        sides = [
            encode_batch(tokenizer, texts, add_special_tokens=add_special_tokens)
            for tokenizer in tokenizers
        ]

        def three_way(sides=sides, pair_specials=pair_specials):  # type: ignore[no-untyped-def]
            return align_many_batch(sides, pair_specials=pair_specials)

        def two_pairwise(sides=sides, pair_specials=pair_specials):  # type: ignore[no-untyped-def]
            return [align_batch(sides[0], side, pair_specials=pair_specials) for side in sides[1:]]

        many, pairs = three_way(), two_pairwise()
        for pair in pairs:  # every 3-way chunk end is a chunk end of both pairs, per row
            assert np.all(many.num_chunks <= pair.num_chunks)
            for row in range(0, len(texts), 7):
                ends = set(many.row(row).chunk_byte_ends.tolist())
                assert ends <= set(pair.row(row).chunk_byte_ends.tolist())
        cases[name] = (three_way, two_pairwise, sum(len(side.input_ids) for side in sides))
    benchmark.pedantic(cases["template"][0], rounds=1, iterations=1)
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(1 if benchmark.disabled else 7):  # interleaved, side by side in one run
        for name, (three_way, two_pairwise, _tokens) in cases.items():
            rows[name].append((timed(three_way)[0], timed(two_pairwise)[0]))
    settings = {}
    for name, (*_functions, num_tokens) in cases.items():
        three_seconds, pairwise_seconds = (
            float(np.median(column)) for column in zip(*rows[name], strict=True)
        )
        figures = {
            "texts": len(texts),
            "tokens_3_sides": num_tokens,
            "three_way_s": round(three_seconds, 4),
            "two_pairwise_s": round(pairwise_seconds, 4),
            "three_way_vs_two_pairwise": round(three_seconds / pairwise_seconds, 3),
            "per_repeat": [tuple(round(x, 4) for x in row) for row in rows[name]],
        }
        settings[name] = figures
        benchmark.extra_info[name] = figures
        print(name, figures)
    if not benchmark.disabled:
        run.save("align_many", {"repeats": len(rows["plain"]), "settings": settings})
