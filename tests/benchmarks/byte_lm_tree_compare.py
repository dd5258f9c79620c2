"""`ByteLM` on real models before and after the token tree: bits per byte and bytes/s, side by side.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python tests/benchmarks/byte_lm_tree_compare.py \
        --bytes 64 --beam 4

Both SmolLM2-135M-Instruct and Gemma-3-270m (float32, from ~/.cache/ctd) score the same English
passage of results/ensemble_bpb.py with the `ByteLM` of commit BEFORE_TREE (one KV cache per
hypothesis, one forward per committed token) and with today's (one forward per byte over a
shared tree cache), interleaved per member. Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    """Time both implementations on both members and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=64)
    parser.add_argument("--beam", type=int, default=4)
    args = parser.parse_args()
    import torch

    sys.path[:0] = [str(ROOT / "results"), str(Path(__file__).parent)]
    from ensemble_bpb import load_members, passage
    from test_ensemble_bench import BEFORE_TREE, _byte_lm_before_tree

    from ctd.ensemble import ByteLM

    torch.set_num_threads(1)
    before = _byte_lm_before_tree()
    if before is None:
        raise SystemExit(f"needs the git history ({BEFORE_TREE})")
    data = passage("en", args.bytes).encode()
    report: dict[str, Any] = {"num_bytes": len(data), "beam": args.beam, "members": {}}
    for name, model, tokenizer in load_members():
        row = {}
        for label, cls in (("before_tree", before.ByteLM), ("tree", ByteLM)):
            lm = cls(model, tokenizer, beam_width=args.beam)
            begin = time.perf_counter()
            logprob = float(lm.score(data).sum())
            seconds = time.perf_counter() - begin
            row[label] = {
                "bpb": -logprob / math.log(2) / len(data),
                "bytes_per_second": len(data) / seconds,
                "forward_calls": lm.forward_calls,
            }
        report["members"][name] = row
        print(name, json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
