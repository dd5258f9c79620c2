"""ctd's `ByteLM` next to genlm-bytes on the same model and texts: bits per byte and bytes/s.

genlm-bytes (PyPI, 0.2.0) needs genlm-backend, numba and transformers>=5, so it runs from its
own venv that also sees ctd's packages:

    python3 -m venv /tmp/genlm && /tmp/genlm/bin/pip install genlm-bytes
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/genlm/lib/python3.11/site-packages/ctd.pth
    OMP_NUM_THREADS=1 /tmp/genlm/bin/python tests/benchmarks/genlm_bytes_compare.py --beam 4

Model: SmolLM2-135M-Instruct (`ctd.models.smollm2`); texts: --texts passages of --bytes bytes
from the Debian Reference (en). Both condition on the tokenizer's BOS and use a beam of the same
width (genlm: `BeamParams(K, heal=True)`, pruned before each byte; ctd: `beam_width`). Prints
one JSON object. Not a pytest file (genlm-bytes is not a ctd dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "assets" / "corpora" / "text" / "debian-reference.en.txt"


def texts(count: int, num_bytes: int) -> list[bytes]:
    """`count` passages of `num_bytes` bytes (ASCII-safe cuts) from the middle of the file."""
    words = CORPUS.read_text(encoding="utf-8").split()
    middle = " ".join(words[len(words) // 2 : len(words) // 2 + 50 * count * num_bytes // 5])
    data = middle.encode("utf-8")
    return [
        data[i * num_bytes : (i + 1) * num_bytes].decode("utf-8", "ignore").encode()
        for i in range(count)
    ]


async def genlm_logprobs(model: Any, tokenizer: Any, data: bytes, beam: int) -> list[float]:
    """Per-byte natural log-probs from genlm-bytes' beam."""
    from genlm.backend.llm import AsyncTransformer
    from genlm.bytes import BeamParams, ByteBeamState

    llm = AsyncTransformer(model, tokenizer)
    state = await ByteBeamState.initial(llm, BeamParams(K=beam, heal=True))
    found = []
    for byte in data:
        found.append(float((await state.logp_next())[byte]))
        state = await (state.prune() << byte)
    await state.cleanup()
    return found


def main() -> None:
    """Score the texts with both and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--texts", type=int, default=3)
    parser.add_argument("--bytes", type=int, default=100)
    args = parser.parse_args()
    import torch

    from ctd.ensemble import ByteLM
    from ctd.models import load_causal_lm, load_tokenizer
    from ctd.models.smollm2 import smollm2_checkpoint

    torch.set_num_threads(1)
    path = str(smollm2_checkpoint(Path.home() / ".cache" / "ctd"))
    model, tokenizer = load_causal_lm(path), load_tokenizer(path)
    report: dict[str, Any] = {"beam": args.beam, "texts": []}
    totals = {"ctd": [0.0, 0.0], "genlm": [0.0, 0.0]}  # bits, seconds
    for data in texts(args.texts, args.bytes):
        begin = time.perf_counter()
        # the same beam as genlm's: no canonical path kept (ByteLM.score's default keeps it)
        ours = ByteLM(model, tokenizer, beam_width=args.beam).score(data, keep_canonical=False)
        ctd_seconds = time.perf_counter() - begin
        begin = time.perf_counter()
        theirs = asyncio.run(genlm_logprobs(model, tokenizer, data, args.beam))
        genlm_seconds = time.perf_counter() - begin
        bits = {"ctd": -ours.sum() / math.log(2), "genlm": -sum(theirs) / math.log(2)}
        for name, seconds in (("ctd", ctd_seconds), ("genlm", genlm_seconds)):
            totals[name][0] += float(bits[name])
            totals[name][1] += seconds
        row = {"num_bytes": len(data), "ctd_bpb": bits["ctd"] / len(data)}
        row |= {"genlm_bpb": bits["genlm"] / len(data), "ctd_seconds": ctd_seconds}
        row |= {"genlm_seconds": genlm_seconds}
        report["texts"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    num_bytes = sum(row["num_bytes"] for row in report["texts"])
    for name, (bits_total, seconds) in totals.items():
        report[name] = {"bpb": bits_total / num_bytes, "bytes_per_second": num_bytes / seconds}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
