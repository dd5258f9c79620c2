"""Byte-level multiple choice on real models: one request at a time vs lanes stepped together.

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/byte_mc_lanes_compare.py --questions 6

The byte-level ensemble of SmolLM2-135M-Instruct and Gemma-3-270m (float32, from ~/.cache/ctd;
beam --beam, `context="tokens"`) scores every choice of the first --questions ARC-Easy questions
(`ctd.ensemble.downstream.score_requests_bytes`) twice: with `max_lanes=1` (each request stepped
alone: one forward per member per byte of each continuation, the layout before lanes) and with
`max_lanes=32` (the continuations of several questions stepped together on one token tree per
member: one forward per member per byte for all of them). A warm-up call on one question each,
then --rounds interleaved rounds (order rotated), wall and CPU medians, forward passes per call
and the largest difference of a request's log-prob between the two.
Records `figures/byte_mc_lanes.json` for BENCHMARKS.md (`make bench` runs it) and prints one
JSON object last.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LANES = {"one_at_a_time": 1, "lanes": 32}


def main() -> None:
    """Time both layouts on the same requests and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import torch

    sys.path[:0] = [str(ROOT / "results"), str(Path(__file__).parent)]
    from bench_helpers import BenchRun, interleaved_medians
    from ensemble_bpb import load_members

    from ctd.ensemble import ByteEnsemble, ByteLM
    from ctd.ensemble.downstream import score_requests_bytes
    from ctd.evaluation.downstream import question_pairs
    from ctd.evaluation.tasks import load_task

    torch.set_num_threads(1)
    run = BenchRun()
    members = [ByteLM(m, t, beam_width=args.beam, name=n) for n, m, t in load_members()]
    ensemble = ByteEnsemble(members)
    questions = load_task("arc_easy", args.questions)
    pairs = question_pairs(questions)
    logprobs: dict[str, list[float]] = {}
    calls: dict[str, list[int]] = {}

    def score(label: str) -> Any:
        def step() -> None:
            before = [member.forward_calls for member in members]
            scores = score_requests_bytes(ensemble, pairs, max_lanes=LANES[label])
            logprobs[label] = [s.logprob for s in scores.ensemble_scores]
            calls[label] = [m.forward_calls - b for m, b in zip(members, before, strict=True)]

        return step

    for lanes in LANES.values():  # warm-up: first-call costs out of the timed rounds
        score_requests_bytes(ensemble, question_pairs(questions[:1]), max_lanes=lanes)
    times = interleaved_medians({label: score(label) for label in LANES}, args.rounds, False)
    gap = max(abs(a - b) for a, b in zip(*logprobs.values(), strict=True))
    report: dict[str, Any] = {
        "task": "arc_easy",
        "questions": len(questions),
        "requests": len(pairs),
        "continuation_bytes": sum(len(c.encode()) for _, c in pairs),
        "beam": args.beam,
        "rounds": args.rounds,
        "members": [member.name for member in members],
        "max_abs_logprob_difference": gap,
        "layouts": {
            label: {
                "max_lanes": LANES[label],
                "seconds": round(times.wall[label], 2),
                "cpu_seconds": round(times.cpu[label], 2),
                "per_round_seconds": [round(t, 2) for t in times.per_round_wall[label]],
                "forward_calls": calls[label],
            }
            for label in LANES
        },
    }
    run.save("byte_mc_lanes", report)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
