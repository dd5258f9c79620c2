"""`ctd specdec` end to end on tiny saved models: the JSON contract and the input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ctd.cli import main

CORPUS = ["the cat sat on the mat", "a dog ran in the park", "hello world, how are you"] * 30
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"


def _tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    backend.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<eos>", pad_token="<pad>", chat_template=TEMPLATE
    )


def _save(folder: Path, tokenizer: PreTrainedTokenizerFast | None, vocab: int, seed: int) -> str:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=96,
        eos_token_id=1, pad_token_id=0,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("specdec")
    target_tokenizer, other_tokenizer = _tokenizer(300), _tokenizer(280)
    vocab = len(target_tokenizer)
    prompts = root / "prompts.jsonl"
    records = [
        {
            "messages": [
                {"role": "user", "content": "hello cat"},
                {"role": "assistant", "content": "x"},
            ]
        },
        {"prompt": "the dog sat"},
        {"prompt": "a park"},
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in records))
    long_prompt = root / "long.jsonl"
    long_prompt.write_text(json.dumps({"prompt": "the cat sat on the mat " * 20}) + "\n")
    return {
        "target": _save(root / "target", target_tokenizer, vocab, 0),
        "drafter": _save(root / "drafter", target_tokenizer, vocab, 1),
        "other": _save(root / "other", other_tokenizer, len(other_tokenizer), 2),
        "wide": _save(root / "wide", target_tokenizer, vocab + 8, 3),
        "bare": _save(root / "bare", None, vocab, 4),
        "prompts": str(prompts),
        "long": str(long_prompt),
    }


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    code = main(["specdec", *argv])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    report = json.loads(lines[-1]) if code == 0 else {}
    return code, report, captured.err


def test_same_tokenizer_json_contract(folders: dict[str, str], capsys) -> None:  # type: ignore[no-untyped-def]
    code, report, _ = _run(
        capsys, "--target", folders["target"], "--drafter", folders["drafter"],
        "--prompts", folders["prompts"], "--gamma", "3", "--max-new-tokens", "12", "--json",
    )  # fmt: skip
    assert code == 0
    for key in ("alpha", "tau", "gamma", "tokens_per_s", "baseline_tokens_per_s", "mbsu"):
        assert isinstance(report[key], int | float), key
    assert len(report["outputs"]) == 3
    assert report["cross_tokenizer"] is False
    assert report["matches_baseline"] is True
    assert 1.0 <= report["tau"] <= 4.0
    assert 0.0 <= report["analytic_alpha"] <= 1.0


def test_identical_drafter_and_limit(folders: dict[str, str], capsys) -> None:  # type: ignore[no-untyped-def]
    code, report, _ = _run(
        capsys, "--target", folders["target"], "--drafter", folders["target"],
        "--prompts", folders["prompts"], "--gamma", "2", "--max-new-tokens", "9",
        "--limit", "2", "--temperature", "1", "--json",
    )  # fmt: skip
    assert code == 0
    assert len(report["outputs"]) == 2
    assert report["alpha"] == 1.0
    assert report["analytic_alpha"] == pytest.approx(1.0)


def test_other_tokenizer_selects_the_cross_tokenizer_path(folders: dict[str, str], capsys) -> None:  # type: ignore[no-untyped-def]
    code, report, _ = _run(
        capsys, "--target", folders["target"], "--drafter", folders["other"],
        "--prompts", folders["prompts"], "--gamma", "3", "--max-new-tokens", "12", "--json",
    )  # fmt: skip
    assert code == 0
    assert report["cross_tokenizer"] is True
    assert report["matches_baseline"] is True  # greedy TLI is lossless
    assert report["shared_tokens"] > 200


@pytest.mark.parametrize(
    ("drafter", "prompts", "gamma", "message"),
    [
        ("wide", "prompts", "3", "does not match"),
        ("drafter", "prompts", "0", "--gamma must be at least 1"),
        ("drafter", "long", "3", "more than the target's context of 96"),
        ("bare", "prompts", "3", "has no usable tokenizer"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(  # type: ignore[no-untyped-def]
    folders: dict[str, str], capsys, drafter: str, prompts: str, gamma: str, message: str
) -> None:
    code, _, err = _run(
        capsys, "--target", folders["target"], "--drafter", folders[drafter],
        "--prompts", folders[prompts], "--gamma", gamma, "--max-new-tokens", "40",
    )  # fmt: skip
    assert code == 2
    assert err.startswith("ctd specdec: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_drafter_of_a_template_less_target_reads_plain_text() -> None:
    from ctd.specdec.evaluate import encode_prompt

    tokenizer = _tokenizer(280)
    record = {"prompt": "the dog sat"}
    plain = tokenizer("the dog sat")["input_ids"]
    templated = tokenizer("<|user|>the dog sat\n<|assistant|>", add_special_tokens=False)
    assert encode_prompt(tokenizer, record) == templated["input_ids"]
    assert encode_prompt(tokenizer, record, chat=False) == plain
    with pytest.raises(ValueError, match="chat template"):
        encode_prompt(tokenizer, {"messages": [{"role": "user", "content": "hi"}]}, chat=False)
