"""`ctd generate`: the target answers prompts into a resumable JSONL file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ctd import cli
from ctd.data.generate import GenerationSettings, completed_ids, generate_answers, read_prompts
from ctd.models import export_pretrained

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = "the quick brown fox jumps over the lazy dog and then some more words follow here"


def _tokenizer(chat: bool) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([WORDS] * 20, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE if chat else None,
    )


def _target(tokenizer: PreTrainedTokenizerFast, context: int = 256) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=context,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def target_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = _tokenizer(chat=True)
    path = tmp_path_factory.mktemp("gen") / "target"
    export_pretrained(_target(tokenizer), tokenizer, path)
    return path


def _write_prompts(path: Path, count: int) -> Path:
    words = WORDS.split()
    with path.open("w") as handle:
        for index in range(count):
            text = " ".join(words[index % 7 : index % 7 + 3])
            if index % 2:
                record = {"id": f"p{index}", "prompt": text}
            else:  # a chat with a trailing assistant turn, and no id: its index is its id
                record = {
                    "messages": [
                        {"role": "user", "content": text},
                        {"role": "assistant", "content": "dropped"},
                    ]
                }
            handle.write(json.dumps(record) + "\n")
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_carry_prompt_answer_and_messages(target_dir: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(target_dir)
    model = LlamaForCausalLM.from_pretrained(target_dir).eval()
    prompts = read_prompts(_write_prompts(tmp_path / "prompts.jsonl", 4))
    assert [prompt.id for prompt in prompts] == ["0", "p1", "2", "p3"]
    out = tmp_path / "out.jsonl"
    settings = GenerationSettings(temperature=0.0, max_new_tokens=6, batch_size=3)
    counts = generate_answers(model, tokenizer, prompts, out, settings, progress=False)
    assert counts == {"written": 4, "skipped": 0, "total": 4}
    records = _records(out)
    assert [record["id"] for record in records] == ["0", "p1", "2", "p3"]
    for record, prompt in zip(records, prompts, strict=True):
        assert record["messages"][:-1] == prompt.messages  # the trailing assistant turn is gone
        assert record["messages"][-1] == {"role": "assistant", "content": record["answer"]}
        expected_prompt = tokenizer.apply_chat_template(
            prompt.messages, add_generation_prompt=True, tokenize=False
        )
        assert record["prompt"] == expected_prompt
        # independent reference: HF greedy generate on the unpadded prompt
        ids = tokenizer(expected_prompt, add_special_tokens=False, return_tensors="pt").input_ids
        reference = model.generate(
            ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )[0, ids.shape[1] :].tolist()
        if tokenizer.eos_token_id in reference:
            reference = reference[: reference.index(tokenizer.eos_token_id)]
        assert record["answer"] == tokenizer.decode(reference, skip_special_tokens=True)
        assert record["finish_reason"] in {"stop", "length"}


def test_a_cut_off_last_record_is_dropped_and_redone(target_dir: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(target_dir)
    model = LlamaForCausalLM.from_pretrained(target_dir).eval()
    prompts = read_prompts(_write_prompts(tmp_path / "prompts.jsonl", 5))
    settings = GenerationSettings(temperature=0.0, max_new_tokens=5, batch_size=2)
    full = tmp_path / "full.jsonl"
    generate_answers(model, tokenizer, prompts, full, settings, progress=False)
    lines = full.read_text().splitlines(keepends=True)
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # killed mid-write
    assert completed_ids(partial) == {"0", "p1"}
    assert partial.read_text() == "".join(lines[:2])  # the cut-off piece is gone
    counts = generate_answers(model, tokenizer, prompts, partial, settings, progress=False)
    assert counts["written"] == 3
    assert counts["skipped"] == 2
    assert _records(partial) == _records(full)


def _generate_command(target_dir: Path, prompts: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "ctd.cli", "generate", "--model", str(target_dir),
        "--prompts", str(prompts), "--output", str(out), "--temperature", "0",
        "--max-new-tokens", "12", "--batch-size", "1", "--no-progress",
    ]  # fmt: skip


def test_killed_run_resumes_without_losing_or_duplicating(target_dir: Path, tmp_path: Path) -> None:
    prompts = _write_prompts(tmp_path / "prompts.jsonl", 80)
    out = tmp_path / "out.jsonl"
    arguments = _generate_command(target_dir, prompts, out)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(arguments, env=environment, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.002)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 3 <= out.read_bytes().count(b"\n") < 80
    result = subprocess.run(arguments, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    records = _records(out)
    ids = [record["id"] for record in records]
    assert sorted(ids) == sorted(prompt.id for prompt in read_prompts(prompts))
    assert len(ids) == len(set(ids))  # every prompt answered exactly once
    tokenizer = AutoTokenizer.from_pretrained(target_dir)
    model = LlamaForCausalLM.from_pretrained(target_dir).eval()
    uninterrupted = tmp_path / "uninterrupted.jsonl"
    settings = GenerationSettings(temperature=0.0, max_new_tokens=12, batch_size=1)
    generate_answers(model, tokenizer, read_prompts(prompts), uninterrupted, settings)
    assert records == _records(uninterrupted)


def test_bad_input_is_one_line_before_any_decoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokenizer = _tokenizer(chat=False)
    target = tmp_path / "plain"
    export_pretrained(_target(tokenizer, context=16), tokenizer, target)
    chats = tmp_path / "chats.jsonl"
    chats.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"prompt": WORDS}) + "\n")
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"id": 1, "prompt": "a"}\n{"id": "1", "prompt": "b"}\n')
    cases = [
        (chats, [], "has no chat template"),
        (plain, [], "exceeds the target's context of 16"),
        (twice, [], "id '1' is also on line 1"),
        (plain, ["--top-p", "0"], "top_p must be in (0, 1]"),
    ]
    capsys.readouterr()
    for prompts, extra, message in cases:
        out = tmp_path / "out.jsonl"
        arguments = ["--model", str(target), "--prompts", str(prompts), "--output", str(out)]
        code = cli.main(["generate", *arguments, "--max-new-tokens", "4", *extra])
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert code == 2
        assert last.startswith("ctd generate: error: ")
        assert message in last
        assert not out.exists() or out.read_text() == ""


def test_plain_prompts_on_a_target_without_template_get_a_text_field(tmp_path: Path) -> None:
    tokenizer = _tokenizer(chat=False)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "the quick"}) + "\n")
    out = tmp_path / "o.jsonl"
    settings = GenerationSettings(temperature=1.0, top_p=0.9, max_new_tokens=4)
    generate_answers(
        _target(tokenizer), tokenizer, read_prompts(prompts), out, settings, progress=False
    )
    (record,) = _records(out)
    assert record["text"] == "the quick" + record["answer"]
    assert record["prompt"] == "the quick"
