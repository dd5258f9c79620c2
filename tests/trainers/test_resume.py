"""Exact resume: a `ctd fit` run SIGKILLed and resumed ends with an uninterrupted run's weights.

Each run is a fresh process (`resume_harness.py`); ALM + SFT (GradMag), CPU, float32, with
DataLoader workers. 14 one-piece documents `doc-NNNN ...` in batches of 2 make 7 batches per
epoch, so 16 steps cross two epoch boundaries and a resume lands mid-epoch. The documents of
every batch are read back from the byte-level student's ids: the resumed run must see the
uninterrupted run's batches, in order, and each epoch every document exactly once. The
student's attention dropout is on, so the RNG states must be restored too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HARNESS = Path(__file__).with_name("resume_harness.py")
NUM_DOCUMENTS = 14
MAX_STEPS = 16
BATCHES_PER_EPOCH = NUM_DOCUMENTS // 2
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "mu"]


def write_documents(path: Path) -> Path:
    docs = [
        f"doc-{i:04d} " + " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6)) + "."
        for i in range(NUM_DOCUMENTS)
    ]
    path.write_text("\n\n".join(docs) + "\n")
    return path


def overrides(tiny: dict[str, Path], train_file: Path, root: Path, *extra: str) -> list[str]:
    return [
        f"teacher.name_or_path={tiny['teacher']}",
        "student.tokenizer=bytes",
        "losses=[{name: alm}, {name: sft}]",
        f"data.train_files=[{train_file}]",
        "data.batch_size=2",
        "data.num_workers=2",
        "data.max_teacher_length=48",
        "data.max_student_length=160",
        "data.max_document_bytes=160",
        "data.shuffle_buffer_size=5",
        f"trainer.max_steps={MAX_STEPS}",
        "trainer.checkpoint_every_n_steps=3",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
        "optim.lr=3e-3",
        "optim.warmup_steps=2",
        f"trainer.default_root_dir={root}",
        f"export_dir={root / 'export'}",
        *extra,
    ]


def run_harness(doc_log: Path, kill: str, kill_step: int, args: list[str]) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env["CTD_TEST_ATTENTION_DROPOUT"] = "0.3"  # every step draws from the torch RNG
    command = [sys.executable, str(HARNESS), str(doc_log), kill, str(kill_step), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if kill == "none" and done.returncode != 0:
        raise AssertionError(done.stderr[-3000:])
    return done.returncode


def read_log(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def student_weights(root: Path) -> dict[str, torch.Tensor]:
    return load_file(root / "export" / "model.safetensors")


@pytest.fixture(scope="module")
def reference(tiny_models, tmp_path_factory) -> tuple[Path, Path, list[dict]]:  # type: ignore[no-untyped-def,type-arg]
    tmp = tmp_path_factory.mktemp("reference")
    train_file = write_documents(tmp / "train.txt")
    root = tmp / "run"
    run_harness(tmp / "docs.jsonl", "none", 0, overrides(tiny_models, train_file, root))
    return train_file, root, read_log(tmp / "docs.jsonl")


@pytest.mark.slow
def test_the_reference_run_sees_every_document_once_per_epoch(reference) -> None:  # type: ignore[no-untyped-def]
    _, _, log = reference
    assert [entry["step"] for entry in log] == list(range(MAX_STEPS))
    epochs: dict[int, list[int]] = {}
    for entry in log:
        epochs.setdefault(entry["epoch"], []).extend(entry["ids"])
    assert sorted(epochs) == [0, 1, 2]
    for epoch in (0, 1):
        assert sorted(epochs[epoch]) == list(range(NUM_DOCUMENTS))
    assert epochs[0] != epochs[1]  # reshuffled
    assert len(set(epochs[2])) == len(epochs[2])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill", "kill_step", "resumed_step"),
    [
        ("mid_step", 7, 6),  # killed between backward and optimizer step 8: back to step 6
        ("after_checkpoint", 9, 9),  # killed right after the step-9 checkpoint
    ],
)
def test_sigkill_and_resume_gives_the_uninterrupted_weights(
    reference, tiny_models, tmp_path, kill, kill_step, resumed_step
) -> None:  # type: ignore[no-untyped-def]
    train_file, reference_root, reference_log = reference
    root = tmp_path / "run"
    args = overrides(tiny_models, train_file, root)
    killed_log, resumed_log = tmp_path / "killed.jsonl", tmp_path / "resumed.jsonl"
    assert run_harness(killed_log, kill, kill_step, args) == -9  # SIGKILL
    assert not (root / "export").exists()
    assert run_harness(resumed_log, "none", 0, [*args, "resume_from=last"]) == 0

    resumed = read_log(resumed_log)
    assert resumed[0]["step"] == resumed_step
    done_before_kill = [entry for entry in read_log(killed_log) if entry["step"] < resumed_step]
    assert done_before_kill + resumed == reference_log  # same batches, same order: none twice

    expected, got = student_weights(reference_root), student_weights(root)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=1e-6, msg=name)
