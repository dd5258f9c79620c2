"""Task `drafter`: a same-tokenizer drafter trained online against its frozen target."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from ctd import cli
from ctd.config import ConfigError
from ctd.models import export_pretrained
from ctd.models.trim import trimmed_drafter
from ctd.trainers.drafter import DRAFTER_WIRINGS, acceptance_metrics
from ctd.trainers.fit import load_run_config, run_fit

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROMPTS = [
    "The quick brown fox",
    "Numbers 12345 and",
    "def add(a, b):",
    "In the beginning",
    "Café au lait",
    "Leading spaces",
]


@pytest.fixture(scope="module")
def drafter_setup(tiny_models, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A sharp 4-layer target with a chat template, its 1-layer trimmed drafter, its answers."""
    root = tmp_path_factory.mktemp("drafter")
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["teacher"])
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        initializer_range=0.3,  # sharp next-token distributions: TVD is far from 0 at first
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    target = LlamaForCausalLM(config).eval()
    paths = {"target": root / "target", "drafter": root / "drafter", "data": root / "gen.jsonl"}
    export_pretrained(target, tokenizer, paths["target"])
    export_pretrained(trimmed_drafter(target, 1), tokenizer, paths["drafter"])
    with paths["data"].open("w") as handle:
        for index, prompt in enumerate(PROMPTS * 2):
            messages = [{"role": "user", "content": prompt}]
            ids = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )["input_ids"]
            torch.manual_seed(index)
            out = target.generate(ids, max_new_tokens=24, do_sample=True, pad_token_id=0)
            answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            record = {"id": str(index), "prompt": prompt, "answer": answer}
            record["messages"] = [*messages, {"role": "assistant", "content": answer}]
            handle.write(json.dumps(record) + "\n")
    return paths


def _overrides(setup: dict[str, Path], tmp_path: Path, *extra: str) -> list[str]:
    return [
        "task=drafter",
        f"target.name_or_path={setup['target']}",
        f"drafter.name_or_path={setup['drafter']}",
        f"data.train_files=[{setup['data']}]",
        f"data.val_files=[{setup['data']}]",
        "data.batch_size=4",
        "data.max_teacher_length=128",
        "data.max_student_length=128",
        "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=3",
        "trainer.val_check_interval=1000",
        f"trainer.default_root_dir={tmp_path / 'run'}",
        *extra,
    ]


def _answer_tvd(target_dir: Path, drafter_dir: Path, data: Path) -> float:
    """Mean TVD(p, q) over the answer positions of the data, from plain transformers logits.

    Independent of the trainer: the answer's tokens are those of the rendered prompt (with
    the generation prompt) followed by the answer text, after the prompt's; positions t
    predict token t + 1.
    """
    tokenizer = AutoTokenizer.from_pretrained(target_dir)
    tokenizer.chat_template = CHAT_TEMPLATE
    target = AutoModelForCausalLM.from_pretrained(target_dir).eval()
    drafter = AutoModelForCausalLM.from_pretrained(drafter_dir).eval()
    total, count = 0.0, 0
    for line in data.read_text().splitlines():
        messages = json.loads(line)["messages"]
        prompt = tokenizer.apply_chat_template(
            messages[:1], add_generation_prompt=True, tokenize=False
        )
        start = len(tokenizer(prompt).input_ids)
        ids = tokenizer(prompt + messages[1]["content"], return_tensors="pt").input_ids
        with torch.no_grad():
            p = torch.softmax(target(ids).logits[0], -1)
            q = torch.softmax(drafter(ids).logits[0], -1)
        tvd = 0.5 * (p - q).abs().sum(-1)[start - 1 : -1]
        total, count = total + float(tvd.sum()), count + tvd.numel()
    return total / count


@pytest.mark.parametrize("loss", sorted(DRAFTER_WIRINGS))
def test_fast_dev_run_of_every_drafter_loss(drafter_setup, tmp_path: Path, loss: str) -> None:
    config = load_run_config(
        overrides=_overrides(drafter_setup, tmp_path, f"loss.name={loss}", "trainer.fast_dev_run=2")
    )
    result = run_fit(config)
    assert math.isfinite(result.metrics["train/loss"])
    assert 0.0 <= result.metrics["val/alpha"] <= 1.0


def test_tvdpp_training_reduces_tvd_to_the_target(drafter_setup, tmp_path: Path) -> None:
    before = _answer_tvd(drafter_setup["target"], drafter_setup["drafter"], drafter_setup["data"])
    config = load_run_config(
        overrides=_overrides(
            drafter_setup,
            tmp_path,
            "trainer.max_steps=40",
            "trainer.val_check_interval=40",
            "optim.lr=0.01",
            "optim.warmup_steps=2",
            "trainer.validate_before_fit=true",
            f"export_dir={tmp_path / 'trained'}",
        )
    )
    result = run_fit(config)
    after = _answer_tvd(drafter_setup["target"], tmp_path / "trained", drafter_setup["data"])
    assert before > 0.2, before  # the untrained 1-layer drafter is far from its target
    assert after < 0.7 * before, (before, after)
    # the trainer's validation measures the same TVD on the same positions
    assert result.metrics["initial/val/tvd"] == pytest.approx(before, abs=2e-3)
    assert result.metrics["val/tvd"] == pytest.approx(after, abs=2e-3)
    assert result.metrics["val/alpha"] == pytest.approx(1 - result.metrics["val/tvd"])


def test_acceptance_metrics_by_hand() -> None:
    """p = (0.5, 0.5), q = (0.25, 0.75): TVD 0.25, alpha 0.75; argmax differs unless tied."""
    target = torch.zeros(1, 2, 2)
    drafter = torch.tensor([[[math.log(0.25), math.log(0.75)], [0.0, 1.0]]])
    mask = torch.tensor([[True, False]])
    values = acceptance_metrics(drafter, target, mask)
    assert values["tvd"].item() == pytest.approx(0.25)
    assert values["alpha"].item() == pytest.approx(0.75)
    assert values["greedy_alpha"].item() == 0.0  # argmax p = 0 (first of a tie), argmax q = 1


def test_a_drafter_with_another_tokenizer_is_refused(
    drafter_setup, tiny_models, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["fit", *_overrides(drafter_setup, tmp_path, "trainer.fast_dev_run=1")]
    arguments = [a for a in arguments if not a.startswith("drafter.name_or_path")]
    code = cli.main([*arguments, f"drafter.name_or_path={tiny_models['student']}"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err.startswith("ctd fit: error: the drafter's tokenizer is not the target's")
    assert "task distill" in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.name=alm", "not trained by task 'drafter'"),
        ("data.max_student_length=32", "must equal data.max_student_length"),
        ("loss.name=tvdp", "Did you mean 'tvdpp'"),
    ],
)
def test_bad_drafter_configs_fail_at_load(drafter_setup, tmp_path, override, message) -> None:
    with pytest.raises((ValueError, ConfigError), match=message):
        load_run_config(overrides=_overrides(drafter_setup, tmp_path, override))
