"""Multiple-choice accuracy of ensembles and of their members (results/ensemble.md).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python results/ensemble_mc.py \
        --lockstep runs/transplant_fit/omp_k64/export --limit 200 --chunk 25 \
        --out results/ensemble/mc_lockstep.json
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python results/ensemble_mc.py \
        --bytes --limit 100 --chunk 8 --seconds 2250 --out results/ensemble/mc_bytes.json

`--lockstep STUDENT`: SmolLM2 moved onto Gemma-3's tokenizer (STUDENT) + Gemma-3-270m, pooled
per token (mean of probabilities, equal weights); every request tokenized as `ctd evaluate
--add-special-tokens` does (Gemma's BOS first, for both members: they share the tokenizer).
`--bytes`: SmolLM2-135M-Instruct + Gemma-3-270m, each through its own tokenizer as a byte LM
(beam --beam), pooled per byte; each member conditions on its canonical tokens of the context
(`context="tokens"`, once per question) and the continuation's bytes are scored; the choices of
a chunk's questions are stepped together (up to --lanes at a time, one forward per member per
byte for all of them; the scores are those of each request alone).

Questions go in chunks of --chunk, ARC-Easy and PIQA in turn (always the task with less CPU
time so far), until each has --limit questions or --seconds of CPU time are spent; members and
ensemble answer exactly the same questions, and --out is rewritten after every chunk (every
choice's log-probs kept per question).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ensemble_bpb import load_members  # noqa: E402

TASK_ORDER = ("arc_easy", "piqa")


def _question_record(question: Any, scores: Any) -> dict[str, Any]:
    """The gold choice and every choice's log-prob under each member and the ensemble."""
    return {
        "doc_id": question.doc_id,
        "gold": question.gold,
        "continuation_bytes": [len(text.encode("utf-8")) for text in question.continuations],
        "member_logprobs": [[s.logprob for s in member] for member in scores.member_scores],
        "ensemble_logprobs": [s.logprob for s in scores.ensemble_scores],
    }


def _split(questions: list[Any], scores: Any) -> list[dict[str, Any]]:
    """`_question_record` of each question, from the scores of all their choices in order."""
    from ctd.ensemble.downstream import EnsembleScores

    records, start = [], 0
    for question in questions:
        end = start + len(question.continuations)
        part = EnsembleScores(
            [member[start:end] for member in scores.member_scores],
            scores.ensemble_scores[start:end],
        )
        records.append(_question_record(question, part))
        start = end
    return records


def _summary(result: Any, names: list[str]) -> dict[str, Any]:
    return {
        "members": {name: r.__dict__ for name, r in zip(names, result.members, strict=True)},
        "ensemble": result.ensemble.__dict__,
    }


def _record_chunk(
    task: dict[str, Any], questions: list[Any], scores: Any, cpu_seconds: float
) -> None:
    """Append a chunk's questions and per-question scores to a task's running record."""
    task["question_objects"] += questions
    task["questions"] += [
        {**record, "cpu_seconds": round(cpu_seconds / len(questions), 2)}
        for record in _split(questions, scores)
    ]
    task["cpu_seconds"] += cpu_seconds
    for mine, theirs in zip(task["member_scores"], scores.member_scores, strict=True):
        mine += theirs
    task["ensemble_scores"] += scores.ensemble_scores


def _report(tasks: dict[str, dict[str, Any]], names: list[str], header: dict[str, Any]) -> Any:
    """The JSON of every task so far: members and ensemble on the questions done."""
    from ctd.ensemble.downstream import EnsembleScores, ensemble_task_result
    from ctd.evaluation.tasks import task_spec

    out: dict[str, Any] = {}
    for name, task in tasks.items():
        if not task["question_objects"]:
            continue
        scores = EnsembleScores(task["member_scores"], task["ensemble_scores"])
        result = ensemble_task_result(task["question_objects"], scores, task_spec(name).kind)
        out[name] = {
            **_summary(result, names),
            "cpu_seconds": round(task["cpu_seconds"], 1),
            "questions": task["questions"],
        }
    return {**header, "tasks": out}


def _run(
    score_chunk: Any, names: list[str], header: dict[str, Any], args: argparse.Namespace
) -> None:
    """Score chunks of questions until every task has `limit` or the CPU budget is spent.

    The next chunk is always of the task with the least CPU time so far; the JSON is rewritten
    after each chunk.
    """
    from ctd.evaluation.tasks import load_task

    pending = {name: load_task(name, args.limit) for name in TASK_ORDER}
    tasks: dict[str, dict[str, Any]] = {
        name: {
            "question_objects": [],
            "questions": [],
            "member_scores": [[] for _ in names],
            "ensemble_scores": [],
            "cpu_seconds": 0.0,
        }
        for name in TASK_ORDER
    }
    start = time.process_time()
    while any(pending.values()) and time.process_time() - start < args.seconds:
        name = min((n for n in TASK_ORDER if pending[n]), key=lambda n: tasks[n]["cpu_seconds"])
        chunk, pending[name] = pending[name][: args.chunk], pending[name][args.chunk :]
        begun = time.process_time()
        scores = score_chunk(chunk)
        _record_chunk(tasks[name], chunk, scores, time.process_time() - begun)
        report = _report(tasks, names, header)
        report["cpu_seconds"] = round(time.process_time() - start, 1)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        done = len(tasks[name]["questions"])
        print(f"{name} {done} questions, {tasks[name]['cpu_seconds']:.0f} s CPU", flush=True)


def run_lockstep(args: argparse.Namespace) -> None:
    """Every member and the lockstep ensemble on the first `limit` questions of each task."""
    from ensemble_bpb import CACHE

    from ctd.ensemble import LockstepEnsemble, check_shared_tokenizer
    from ctd.ensemble.downstream import score_requests_lockstep
    from ctd.evaluation.downstream import encode_pair, question_pairs
    from ctd.models import load_causal_lm, load_tokenizer
    from ctd.models.gemma import gemma3_270m_checkpoint

    paths = [args.lockstep, str(gemma3_270m_checkpoint(CACHE))]
    tokenizers = [load_tokenizer(path) for path in paths]
    check_shared_tokenizer(tokenizers, paths)
    ensemble = LockstepEnsemble([load_causal_lm(path) for path in paths])

    def score_chunk(questions: list[Any]) -> Any:
        requests = [
            encode_pair(tokenizers[1], context, continuation, add_special_tokens=True)
            for context, continuation in question_pairs(questions)
        ]
        return score_requests_lockstep(ensemble, requests, batch_size=8)

    header = {"mode": "lockstep", "student": args.lockstep, "limit": args.limit}
    _run(score_chunk, ["student", "gemma3"], header, args)


def run_bytes(args: argparse.Namespace) -> None:
    """Every member's byte LM and their byte-level ensemble, questions until the time is spent."""
    from ctd.ensemble import ByteEnsemble, ByteLM
    from ctd.ensemble.downstream import score_requests_bytes
    from ctd.evaluation.downstream import question_pairs

    members = [
        ByteLM(model, tokenizer, beam_width=args.beam, name=name)
        for name, model, tokenizer in load_members()
    ]
    ensemble = ByteEnsemble(members)

    def score_chunk(questions: list[Any]) -> Any:
        pairs = question_pairs(questions)
        return score_requests_bytes(ensemble, pairs, context="tokens", max_lanes=args.lanes)

    header = {
        "mode": "bytes",
        "context": "tokens",
        "beam": args.beam,
        "lanes": args.lanes,
        "limit": args.limit,
        "cpu_budget_seconds": args.seconds,
    }
    _run(score_chunk, ["smollm2", "gemma3"], header, args)


def main() -> None:
    """Run one experiment and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lockstep", help="the student on Gemma-3's tokenizer")
    parser.add_argument("--bytes", action="store_true", help="byte level: SmolLM2 + Gemma-3")
    parser.add_argument("--limit", type=int, default=200, help="first N questions per task")
    parser.add_argument("--seconds", type=float, default=1e9, help="CPU-time budget")
    parser.add_argument("--beam", type=int, default=4, help="bytes: hypotheses per member")
    parser.add_argument("--chunk", type=int, default=1, help="questions per step")
    parser.add_argument("--lanes", type=int, default=32, help="bytes: requests stepped together")
    parser.add_argument("--out", type=Path, required=True, help="rewritten after each chunk")
    args = parser.parse_args()
    if args.lockstep:
        run_lockstep(args)
    elif args.bytes:
        run_bytes(args)
    else:
        raise SystemExit("give --lockstep STUDENT or --bytes")


if __name__ == "__main__":
    main()
