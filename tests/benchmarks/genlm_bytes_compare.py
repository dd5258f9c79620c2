"""ctd's `ByteLM` next to genlm-bytes on the same model and texts: bits per byte and bytes/s.

genlm-bytes (PyPI, 0.2.0) needs genlm-backend, numba and transformers>=5, so it runs from its
own venv, .benchmarks/genlm, that also sees ctd's .venv packages (a .pth file); `make
genlm-venv` builds it from PyPI (`make bench` does, then runs this script):

    make genlm-venv
    OMP_NUM_THREADS=1 .benchmarks/genlm/bin/python tests/benchmarks/genlm_bytes_compare.py \
        --beam 4 --texts 3 --bytes 32

Model: SmolLM2-135M-Instruct (`ctd.models.smollm2`); texts: --texts passages of --bytes bytes
from the Debian Reference (en). Both condition on the tokenizer's BOS and use a beam of the same
width (genlm: `BeamParams(K, heal=True)`, pruned before each byte; ctd: `beam_width`). After a
warm-up call each on 4 bytes, each text is scored by ctd, then by genlm (wall and CPU seconds,
each side's set-up included). Records
`figures/genlm_bytes.json` for BENCHMARKS.md and prints one JSON object. Not a pytest file
(genlm-bytes is not a ctd dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
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


def score_both(model: Any, tokenizer: Any, data: bytes, beam: int) -> dict[str, Any]:
    """Bits, wall and CPU seconds of `data` under ctd's `ByteLM` and genlm-bytes, each
    including its set-up (ctd's TokenByteTrie; genlm's AsyncTransformer and byte trie)."""
    from bench_helpers import timed

    from ctd.ensemble import ByteLM

    def ctd_logprobs() -> Any:
        # the same beam as genlm's: no canonical path kept (ByteLM.score's default keeps it)
        return ByteLM(model, tokenizer, beam_width=beam).score(data, keep_canonical=False)

    found: dict[str, Any] = {}
    row: dict[str, Any] = {"num_bytes": len(data)}
    for name, run in (
        ("ctd", ctd_logprobs),
        ("genlm", lambda: asyncio.run(genlm_logprobs(model, tokenizer, data, beam))),
    ):
        seconds, cpu_seconds = timed(lambda run=run, name=name: found.update({name: run()}))
        bits = -float(sum(found[name])) / math.log(2)
        row[name] = {"bits": bits, "seconds": seconds, "cpu_seconds": cpu_seconds}
    return row


def main() -> None:
    """Score the texts with both and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--texts", type=int, default=3)
    parser.add_argument("--bytes", type=int, default=32)
    args = parser.parse_args()
    import torch
    from bench_helpers import BenchRun

    from ctd.models import load_causal_lm, load_tokenizer
    from ctd.models.smollm2 import smollm2_checkpoint

    torch.set_num_threads(1)
    run = BenchRun()
    path = str(smollm2_checkpoint(Path.home() / ".cache" / "ctd"))
    model, tokenizer = load_causal_lm(path), load_tokenizer(path)
    report: dict[str, Any] = {"beam": args.beam, "model": "SmolLM2-135M-Instruct", "texts": []}
    report["versions"] = {name: version(name) for name in ("genlm-bytes", "genlm-backend")}
    report["versions"]["transformers"] = version("transformers")
    passages = texts(args.texts, args.bytes)
    score_both(model, tokenizer, passages[0][:4], args.beam)  # warm-up: first-call costs
    for data in passages:
        row = score_both(model, tokenizer, data, args.beam)
        report["texts"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    num_bytes = sum(row["num_bytes"] for row in report["texts"])
    for name in ("ctd", "genlm"):
        rows = [row[name] for row in report["texts"]]
        report[name] = {
            "bpb": sum(r["bits"] for r in rows) / num_bytes,
            "seconds": sum(r["seconds"] for r in rows),
            "cpu_seconds": sum(r["cpu_seconds"] for r in rows),
        }
    run.save("genlm_bytes", report)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
