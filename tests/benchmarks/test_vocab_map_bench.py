"""MinED vocabulary map: the length-windowed search vs a plain all-pairs rapidfuzz cdist.

Run for real: `.venv/bin/pytest tests/benchmarks/test_vocab_map_bench.py --benchmark-enable -s`
(SmolLM2 student, Qwen2 teacher: 2,000 student tokens with no exact teacher match, against all
~151k teacher text tokens, both ways interleaved 3 times; then the whole map once); it records
`figures/vocab_map.json` for BENCHMARKS.md. With --benchmark-disable (CI) it checks on 100 such
tokens that both ways give the same ids.

The straightforward way is what rapidfuzz's documentation suggests: one `process.cdist` over
every (query, choice) pair, then the first argmin (choices in id order = lowest id on ties).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench_helpers import BenchRun, interleaved_medians, timed

from ctd.alignment import mined_vocab_map, nearest_by_edit_distance, token_bytes

pytestmark = pytest.mark.benchmark
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "assets" / "tokenizers"


def all_pairs_nearest(queries: list[bytes], choices: list[bytes], ids: np.ndarray) -> np.ndarray:
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    text_choices = [c.decode("latin-1") for c in choices]
    out = []
    for start in range(0, len(queries), 128):  # 128 x 151k int32 = 77 MB per block
        block = [q.decode("latin-1") for q in queries[start : start + 128]]
        distances = cdist(
            block, text_choices, scorer=Levenshtein.distance, dtype=np.int32, workers=-1
        )
        out.append(ids[distances.argmin(axis=1)])
    return np.concatenate(out)


def test_windowed_vs_all_pairs(benchmark) -> None:  # type: ignore[no-untyped-def]
    if not (SHARED / "qwen2").exists():
        pytest.skip("../shared absent: the benchmark needs the SmolLM2/Qwen2 tokenizers")
    run = BenchRun()
    from tokenizers import Tokenizer

    student = Tokenizer.from_file(str(SHARED / "smollm2" / "tokenizer.json"))
    teacher = Tokenizer.from_file(str(SHARED / "qwen2" / "tokenizer.json"))
    sb, tb = token_bytes(student), token_bytes(teacher)
    teacher_ids = np.flatnonzero(~tb.is_special)
    choices = [tb.bytes_of[i] for i in teacher_ids.tolist()]
    known = set(choices)
    unmatched = [
        i for i in range(sb.vocab_size) if not sb.is_special[i] and sb.bytes_of[i] not in known
    ]
    count = 100 if benchmark.disabled else 2000
    picked = np.random.default_rng(0).choice(unmatched, size=count, replace=False)
    queries = [sb.bytes_of[i] for i in picked.tolist()]
    ours = benchmark.pedantic(
        nearest_by_edit_distance, args=(queries, choices, teacher_ids), rounds=1, iterations=1
    )
    np.testing.assert_array_equal(ours, all_pairs_nearest(queries, choices, teacher_ids))
    if benchmark.disabled:
        return
    times = interleaved_medians(  # side by side; the checked call above was the warm-up
        {
            "windowed": lambda: nearest_by_edit_distance(queries, choices, teacher_ids),
            "all_pairs": lambda: all_pairs_nearest(queries, choices, teacher_ids),
        },
        rounds=3,
        warmup=False,
    )
    maps: list[np.ndarray] = []
    whole_map_s, whole_map_cpu_s = timed(lambda: maps.append(mined_vocab_map(student, teacher)))
    full = maps[0]
    figures = {
        **times.figures(),
        "rounds": 3,
        "queries": count,
        "teacher_text_tokens": len(choices),
        "student_vocab": sb.vocab_size,
        "teacher_vocab": tb.vocab_size,
        "student_ids_without_exact_match": len(unmatched),
        "whole_map_s": round(whole_map_s, 2),
        "whole_map_cpu_s": round(whole_map_cpu_s, 2),
        "ids_mapped_to_identical_bytes": int(
            sum(sb.bytes_of[i] == tb.bytes_of[t] for i, t in enumerate(full.tolist()))
        ),
    }
    run.save("vocab_map", figures)
    benchmark.extra_info.update(figures)
    print(figures)
    # Timings on a shared 2-core machine are too noisy to assert: reported, never asserted.
