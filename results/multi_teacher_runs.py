#!/usr/bin/env python3
"""Runs behind results/multi_teacher.md: multi-teacher ALM against single teachers.

One small student distilled from SmolLM2-135M-Instruct + Gemma-3-270m (task multi_distill,
ensemble and sum) against each single teacher and SFT alone, at an equal budget (same student
init, data, steps, seed, batch).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python results/multi_teacher_runs.py run \
        runs/multi_teacher
    .venv/bin/python results/multi_teacher_runs.py collect runs/multi_teacher results/multi_teacher

The student is a 4-layer Llama (hidden 128) with GPT-2's tokenizer (a third tokenizer, 50k BPE),
randomly initialised once (seed 0) and saved; every setting starts from that folder. Teachers:
the plain checkpoints `ctd.models.smollm2_checkpoint` / `ctd.models.gemma3_270m_checkpoint`
cache under ~/.cache/ctd. After training, each exported student is scored on the same held-out
bytes (its own tokenization, identical for all: bits per byte over tokens 1..T of each document).
`collect` copies each run's small outputs (metrics.json, config.yaml, wall_seconds, eval.json);
results/summarize_multi_teacher.py writes the table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "ctd"
STEPS = 30
TEACHERS = {"smollm2": "smollm2-135m-instruct-float32", "gemma3": "gemma-3-270m-float32"}
SETTINGS = {  # name: (teachers, multi_teacher, losses)
    "smollm2+gemma3 ensemble": (["smollm2", "gemma3"], "ensemble", "alm_sft"),
    "smollm2 only": (["smollm2"], "ensemble", "alm_sft"),
    "gemma3 only": (["gemma3"], "ensemble", "alm_sft"),
    "sft only (no teacher)": (["smollm2"], "ensemble", "sft"),
    "smollm2+gemma3 sum": (["smollm2", "gemma3"], "sum", "alm_sft"),
}
LOSSES = {"alm_sft": "[{name: alm}, {name: sft}]", "sft": "[{name: sft}]"}
EVAL_DOCUMENTS = 64
EVAL_BYTES = 384


def slug(name: str) -> str:
    """A folder name for a setting."""
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def make_student(folder: Path) -> None:
    """The shared random init: 4-layer Llama, hidden 128, GPT-2 tokenizer (seed 0)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if (folder / "config.json").exists():
        return
    raw = gzip.decompress((REPO / "tests/fixtures/tokenizers/gpt2/tokenizer.json.gz").read_bytes())
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(raw.decode()),
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=384, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def fit(out: Path, name: str, student: Path) -> Path:
    """`ctd fit` of one setting into `out/<slug>` (skipped when it already finished)."""
    teachers, combine, losses = SETTINGS[name]
    run = out / slug(name)
    if (run / "metrics.json").is_file():
        return run
    run.mkdir(parents=True, exist_ok=True)
    teacher_list = ", ".join(f"{{name_or_path: {CACHE / TEACHERS[t]}}}" for t in teachers)
    arguments = [
        "task=multi_distill", f"teachers=[{teacher_list}]", f"multi_teacher={combine}",
        f"student.name_or_path={student}", f"losses={LOSSES[losses]}",
        "loss_aggregation=weighted_sum",
        "data.train_files=[ctd/data/corpus/train.txt.gz]",
        "data.val_files=[ctd/data/corpus/heldout.txt.gz]",
        "data.batch_size=4", "data.max_teacher_length=64", "data.max_student_length=64",
        "data.max_document_bytes=200", "data.on_unmappable=skip", "data.min_text_coverage=0",
        "optim.lr=1.0e-3", "optim.warmup_steps=5", f"trainer.max_steps={STEPS}",
        f"trainer.val_check_interval={STEPS}", "trainer.limit_val_batches=8",
        "trainer.enable_progress_bar=false", f"trainer.default_root_dir={run}",
        f"export_dir={run / 'export'}", "seed=0",
    ]  # fmt: skip
    start = time.time()
    with (run / "run.log").open("w") as log:
        subprocess.run(
            [str(REPO / ".venv/bin/ctd"), "fit", *arguments], cwd=REPO, stdout=log,
            stderr=subprocess.STDOUT, check=True,
        )  # fmt: skip
    (run / "wall_seconds").write_text(f"{time.time() - start:.0f}\n")
    return run


def heldout_documents() -> list[str]:
    """The first held-out documents, each cut to at most EVAL_BYTES bytes."""
    text = gzip.decompress((REPO / "ctd/data/corpus/heldout.txt.gz").read_bytes()).decode()
    documents = [d for d in text.split("\n\n") if len(d.encode()) >= EVAL_BYTES // 2]
    return [d.encode()[:EVAL_BYTES].decode(errors="ignore") for d in documents[:EVAL_DOCUMENTS]]


def student_bpb(folder: Path, documents: list[str]) -> dict[str, float]:
    """Bits per byte over tokens 1..T of each document (token 0 has no prediction)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ctd.alignment import encode

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    nats, num_bytes = 0.0, 0
    for tokens in encode(tokenizer, documents, add_special_tokens=False):
        ids = torch.as_tensor(tokens.input_ids)[None]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
        nats -= float(logprobs.gather(1, ids[0, 1:, None]).sum())
        num_bytes += int(tokens.byte_ends[-1] - tokens.byte_starts[1])
    return {"bpb": nats / math.log(2) / num_bytes, "bytes": num_bytes}


def run_all(out: Path, only: list[str] | None = None) -> None:
    """The student init, every setting (or `only` these), each exported student's held-out BPB."""
    sys.path.insert(0, str(REPO))
    student = out / "student_init"
    make_student(student)
    documents = heldout_documents()
    init = out / "init_eval.json"
    if not init.exists():
        init.write_text(json.dumps(student_bpb(student, documents)) + "\n")
    for name in only or SETTINGS:
        run = fit(out, name, student)
        if not (run / "eval.json").exists():
            (run / "eval.json").write_text(
                json.dumps(student_bpb(run / "export", documents)) + "\n"
            )
        print(name, (run / "eval.json").read_text().strip(), flush=True)


def collect(out: Path, dest: Path) -> None:
    """Copy the small outputs of every finished setting to `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "init_eval.json", dest / "init_eval.json")
    for name in SETTINGS:
        run, target = out / slug(name), dest / slug(name)
        target.mkdir(exist_ok=True)
        for file in ("metrics.json", "config.yaml", "wall_seconds", "eval.json"):
            if (run / file).is_file():
                shutil.copyfile(run / file, target / file)


def main() -> None:
    """`run OUT` or `collect OUT [DEST]`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["run", "collect"])
    parser.add_argument("out", type=Path)
    parser.add_argument("dest", type=Path, nargs="?")
    parser.add_argument("--only", action="append", choices=list(SETTINGS), help="one setting")
    args = parser.parse_args()
    if args.command == "run":
        run_all(args.out, args.only)
    else:
        collect(args.out, args.dest or REPO / "results" / "multi_teacher")


if __name__ == "__main__":
    main()
