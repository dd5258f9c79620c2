"""`ByteLM` on real models before and after the token tree: bits per byte and bytes/s, side by side.

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/byte_lm_tree_compare.py --bytes 64 --beam 4

Both SmolLM2-135M-Instruct and Gemma-3-270m (float32, from ~/.cache/ctd) score the same English
passage of results/ensemble_bpb.py with the `ByteLM` of commit BEFORE_TREE (one KV cache per
hypothesis, one forward per committed token, read from git) and with today's (one forward per
byte over a shared tree cache): after a warm-up call each, --rounds interleaved rounds per
member (order rotated), wall and CPU medians.
Records `figures/byte_lm_tree.json` for BENCHMARKS.md (`make bench` runs it) and prints one
JSON object last.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _compare(lms: dict[str, Any], data: bytes, rounds: int) -> dict[str, Any]:
    """Bits per byte, forward passes per call and wall / CPU medians of each `ByteLM` in `lms`,
    `rounds` interleaved rounds (order rotated) after a warm-up call on the first bytes."""
    from bench_helpers import interleaved_medians

    logprobs: dict[str, float] = {}

    def score(label: str) -> Callable[[], None]:
        return lambda: logprobs.update({label: float(lms[label].score(data).sum())})

    for lm in lms.values():
        lm.score(data[:4])  # warm-up: first-call costs out of the timed rounds
    calls_before = {label: lm.forward_calls for label, lm in lms.items()}
    times = interleaved_medians({label: score(label) for label in lms}, rounds, warmup=False)
    return {
        label: {
            "bpb": -logprobs[label] / math.log(2) / len(data),
            "seconds": round(times.wall[label], 2),
            "cpu_seconds": round(times.cpu[label], 2),
            "per_round_seconds": [round(t, 2) for t in times.per_round_wall[label]],
            "forward_calls": (lm.forward_calls - calls_before[label]) // rounds,
        }
        for label, lm in lms.items()
    }


def main() -> None:
    """Time both implementations on both members and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=64)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    sys.path[:0] = [str(ROOT / "results"), str(Path(__file__).parent)]
    from bench_helpers import BenchRun
    from ensemble_bpb import load_members, passage
    from test_ensemble_bench import BEFORE_TREE, _byte_lm_before_tree

    from ctd.ensemble import ByteLM

    torch.set_num_threads(1)
    run = BenchRun()
    before = _byte_lm_before_tree()
    if before is None:
        raise SystemExit(f"needs the git history ({BEFORE_TREE})")
    data = passage("en", args.bytes).encode()
    report: dict[str, Any] = {"num_bytes": len(data), "beam": args.beam, "rounds": args.rounds}
    report["members"] = {}
    for name, model, tokenizer in load_members():
        lms = {
            label: cls(model, tokenizer, beam_width=args.beam)
            for label, cls in (("before_tree", before.ByteLM), ("tree", ByteLM))
        }
        row = _compare(lms, data, args.rounds)
        report["members"][name] = row
        print(name, json.dumps(row), file=sys.stderr, flush=True)
    run.save("byte_lm_tree", report)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
