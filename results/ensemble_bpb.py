"""Byte-level ensemble of SmolLM2-135M and Gemma-3-270m vs each member (results/ensemble.md).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python results/ensemble_bpb.py \
        --bytes 300 --beam 4 --out results/ensemble/bpb.json

Text: the parallel Debian Reference (../shared/assets/corpora/text, held out: neither model was
trained on these files by ctd) in en/de/fr/ja/zh-cn, the same passage of each (the middle of
the file, cut at a character boundary to --bytes). Every member and the ensemble are scored on
exactly those bytes: byte-level BPB (`ByteLM`, beam --beam), the ensemble with equal weights,
and each member's plain BPB of its canonical tokenization for reference. `--exact` also measures
the beam's error against the exact marginal (beam_width=None) on short texts instead
(`--exact --out results/ensemble/beam_error.json`). `--lockstep STUDENT` runs `ctd ensemble
--mode lockstep --json` of a SmolLM2 student moved onto Gemma-3's tokenizer with Gemma-3-270m
instead, on ctd's held-out English corpus and on the de/fr/ja/zh-cn passages
(`--lockstep runs/transplant_fit/omp_k64/export --bytes 4096 --out results/ensemble/lockstep.json`).
`--window-bytes W` scores the passages in windows of at most W bytes instead, each after each
member's tokens of the passage before it, all languages' windows stepped together
(`score_bytes(window_bytes=W)`): `--bytes 64 --window-bytes 16 --out
results/ensemble/windows_gap.json` measures the windows' gap to the one-beam table on the same
bytes, `--bytes 1024 --window-bytes 64 --out results/ensemble/bpb_windows.json` longer texts.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "corpora" / "text"
LANGUAGES = ("en", "de", "fr", "ja", "zh-cn")
CACHE = Path.home() / ".cache" / "ctd"
HELDOUT = Path(__file__).resolve().parents[1] / "ctd" / "data" / "corpus" / "heldout.txt.gz"


def is_prose(paragraph: str) -> bool:
    """No table rules or columns, and at least 70% letters or spaces (CJK counts as letters)."""
    if any(mark in paragraph for mark in ("|", "+--", "---", "===", "$ ", "# ")):
        return False
    letters = sum(char.isalpha() or char.isspace() for char in paragraph)
    return letters >= 0.7 * len(paragraph)


def passage(language: str, num_bytes: int) -> str:
    """Prose from the middle of debian-reference.<language>, cut to num_bytes.

    Consecutive paragraphs of >= 40 bytes that pass `is_prose` (tables and shell lines skipped),
    whitespace-normalised and joined by one space.
    """
    text = (CORPUS / f"debian-reference.{language}.txt").read_text(encoding="utf-8")
    found, size = [], 0
    for block in text[len(text) // 2 :].split("\n\n"):
        paragraph = " ".join(block.split())
        if len(paragraph.encode("utf-8")) >= 40 and is_prose(paragraph):
            found.append(paragraph)
            size += len(paragraph.encode("utf-8")) + 1
            if size >= num_bytes:
                return " ".join(found).encode("utf-8")[:num_bytes].decode("utf-8", errors="ignore")
    raise SystemExit(f"not {num_bytes} bytes of prose in debian-reference.{language}")


def load_members() -> list[tuple[str, Any, Any]]:
    """(name, model, tokenizer) of SmolLM2-135M-Instruct and Gemma-3-270m, float32."""
    from ctd.models import load_causal_lm, load_tokenizer
    from ctd.models.gemma import gemma3_270m_checkpoint
    from ctd.models.smollm2 import smollm2_checkpoint

    members = []
    for name, path in (
        ("smollm2", smollm2_checkpoint(CACHE)),
        ("gemma3", gemma3_270m_checkpoint(CACHE)),
    ):
        members.append((name, load_causal_lm(str(path)), load_tokenizer(str(path))))
    return members


def canonical_bpb(model: Any, tokenizer: Any, text: str) -> float:
    """Bits per byte of the canonical tokenization (after the tokenizer's BOS)."""
    from ctd.ensemble import LockstepEnsemble, bits_per_byte_report, score_lockstep

    return bits_per_byte_report(
        score_lockstep(LockstepEnsemble([model]), tokenizer, [text])
    ).ensemble_bpb


def bpb_rows(members: list[tuple[str, Any, Any]], num_bytes: int, beam: int) -> dict[str, Any]:
    """Per language: byte-level BPB of each member and the ensemble, canonical BPB too."""
    from ctd.ensemble import ByteEnsemble, ByteLM, bits_per_byte_report, score_bytes

    rows = {}
    for language in LANGUAGES:
        text = passage(language, num_bytes)
        byte_lms = [ByteLM(m, t, beam_width=beam, name=n) for n, m, t in members]
        start = time.perf_counter()
        report = bits_per_byte_report(score_bytes(ByteEnsemble(byte_lms), [text]))
        seconds = time.perf_counter() - start
        rows[language] = {
            "num_bytes": report.num_bytes,
            "ensemble_bpb": report.ensemble_bpb,
            "members": {
                name: {
                    "byte_bpb": bpb,
                    "canonical_bpb": canonical_bpb(model, tokenizer, text),
                    "forward_calls": lm.forward_calls,
                    "token_steps": lm.token_steps,
                }
                for (name, model, tokenizer), bpb, lm in zip(
                    members, report.member_bpb, byte_lms, strict=True
                )
            },
            "seconds": round(seconds, 1),
        }
        print(language, json.dumps(rows[language]), flush=True)
    return rows


def windowed_rows(
    members: list[tuple[str, Any, Any]],
    num_bytes: int,
    beam: int,
    window_bytes: int,
    warmup_bytes: int,
) -> dict[str, Any]:
    """Per language: BPB of each member and the ensemble, every passage scored in windows."""
    from ctd.ensemble import ByteEnsemble, ByteLM, bits_per_byte_report, score_bytes
    from ctd.ensemble.scoring import window_starts

    texts = {language: passage(language, num_bytes) for language in LANGUAGES}
    byte_lms = [ByteLM(m, t, beam_width=beam, name=n) for n, m, t in members]
    start = time.perf_counter()
    scores = score_bytes(
        ByteEnsemble(byte_lms),
        list(texts.values()),
        window_bytes=window_bytes,
        warmup_bytes=warmup_bytes,
    )
    seconds = time.perf_counter() - start
    rows = {}
    for (language, text), text_scores in zip(texts.items(), scores, strict=True):
        report = bits_per_byte_report([text_scores])
        rows[language] = {
            "num_bytes": report.num_bytes,
            "num_windows": len(window_starts(text, window_bytes)),
            "ensemble_bpb": report.ensemble_bpb,
            "members": {
                name: {"byte_bpb": bpb, "canonical_bpb": canonical_bpb(model, tokenizer, text)}
                for (name, model, tokenizer), bpb in zip(members, report.member_bpb, strict=True)
            },
        }
        print(language, json.dumps(rows[language]), flush=True)
    calls = {lm.name: lm.forward_calls for lm in byte_lms}
    return {"languages": rows, "scoring_seconds": round(seconds, 1), "forward_calls": calls}


def beam_error(members: list[tuple[str, Any, Any]], lengths: dict[str, int]) -> dict[str, Any]:
    """log2 P(text) of beams 1, 2, 4, 8 against the exact marginal, on short English texts."""
    from ctd.ensemble import ByteLM

    starts = ("The file ", "You can u")
    found: dict[str, Any] = {}
    for name, model, tokenizer in members:
        texts = [start.encode()[: lengths[name]] for start in starts]
        rows = []
        for data in texts:
            exact_lm = ByteLM(model, tokenizer, beam_width=None)
            exact = float(exact_lm.score(data).sum()) / math.log(2)
            beams = {
                str(k): float(ByteLM(model, tokenizer, beam_width=k).score(data).sum())
                / math.log(2)
                for k in (1, 2, 4, 8)
            }
            rows.append(
                {
                    "text": data.decode(),
                    "exact_bits": exact,
                    "forward_calls": exact_lm.token_steps,
                    "beam_bits": beams,
                }
            )
            print(name, json.dumps(rows[-1]), flush=True)
        found[name] = rows
    return found


def lockstep_rows(student: str, num_bytes: int) -> dict[str, Any]:
    """`ctd ensemble --mode lockstep --json` of the student and Gemma-3-270m on each text."""
    from ctd.models.gemma import gemma3_270m_checkpoint

    texts = {"en (held-out)": gzip.decompress(HELDOUT.read_bytes()).decode("utf-8")}
    texts |= {language: passage(language, num_bytes) for language in LANGUAGES[1:]}
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, text in texts.items():
            path = Path(folder) / "text.txt"
            path.write_text(text, encoding="utf-8")
            command = [
                sys.executable, "-m", "ctd.cli", "ensemble", "--mode", "lockstep",
                "--models", student, str(gemma3_270m_checkpoint(CACHE)),
                "--text-file", str(path), "--limit-bytes", str(num_bytes), "--json",
            ]  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
            rows[name]["seconds"] = round(time.perf_counter() - start, 1)
            print(name, json.dumps(rows[name]), flush=True)
    return rows


def main() -> None:
    """Run and write the JSON output."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=300)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--exact", action="store_true", help="the beam error vs exact instead")
    parser.add_argument("--lockstep", metavar="STUDENT", help="lockstep with Gemma-3 instead")
    parser.add_argument("--window-bytes", type=int, help="score in windows of at most N bytes")
    parser.add_argument("--warmup-bytes", type=int, default=16, help="windows: unscored bytes")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    if args.lockstep:
        found = {"student": args.lockstep, "bytes_per_text": args.bytes}
        found["texts"] = lockstep_rows(args.lockstep, args.bytes)
        found["wall_seconds"] = round(time.perf_counter() - start, 1)
        Path(args.out).write_text(json.dumps(found, indent=1) + "\n")
        return
    members = load_members()
    result: dict[str, Any] = {
        "bytes_per_language": args.bytes,
        "beam": args.beam,
        "weights": [0.5, 0.5],
    }
    if args.exact:
        result = {"beam_error": beam_error(members, {"smollm2": 8, "gemma3": 5})}
    elif args.window_bytes:
        result |= {"window_bytes": args.window_bytes, "warmup_bytes": args.warmup_bytes}
        result |= windowed_rows(
            members, args.bytes, args.beam, args.window_bytes, args.warmup_bytes
        )
    else:
        result["languages"] = bpb_rows(members, args.bytes, args.beam)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
