"""results/transfer_equal_tables.py on a hand-made run set: retained share, error, spread."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "results"))

import transfer_equal_tables as tables  # noqa: E402

TASKS = ("piqa", "arc_easy", "hellaswag", "lambada")


def _report(accs: list[float], num_questions: int, ood_en: float) -> dict[str, object]:
    return {
        "tasks": {
            task: {"num_questions": num_questions, "acc": acc, "acc_per_byte": acc}
            for task, acc in zip(TASKS, accs, strict=True)
        },
        "text_files": {"/x/ood.en.txt": {"bits_per_byte": ood_en}},
    }


def _write(folder: Path, name: str, report: dict[str, object], indomain: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(report))
    text = {"tasks": {}, "text_files": {"/x/indomain.en.txt": {"bits_per_byte": indomain}}}
    (folder / f"{name}.indomain.json").write_text(json.dumps(text))


def _run_set(root: Path) -> None:
    _write(root / "zero_shot", "teacher", _report([0.6, 0.5, 0.4, 0.3], 100, 1.5), 1.8)
    for seed, accs in ((0, [0.54, 0.45, 0.36, 0.27]), (1, [0.6, 0.5, 0.4, 0.3])):
        folder = root / "qwen2" / "sft" / f"seed{seed}"
        _write(folder, "downstream", _report(accs, 100, 2.0 + seed), 1.9 + seed)
        (folder / "wall_seconds").write_text("90")


def test_accuracy_table_rows_by_hand(tmp_path: Path) -> None:
    _run_set(tmp_path)
    lines = tables.accuracy_table(tmp_path).splitlines()
    teacher_error = math.sqrt(sum(a * (1 - a) / 100 for a in (0.6, 0.5, 0.4, 0.3))) / 4
    assert lines[2].startswith("| teacher (SmolLM2-135M-Instruct) | 60.0% | 50.0% | 40.0% | 30.0%")
    assert f"| 45.0% ± {teacher_error:.1%} | 100.0% | 100 | - |" in lines[2]
    # seed 0 keeps 0.405 / 0.45 = 90% of the teacher's mean; its fit took 1.5 min
    assert lines[3].startswith("| Qwen2: SFT, seed 0 | 54.0% | 45.0% | 36.0% | 27.0% | 40.5% ±")
    assert lines[3].endswith("| 90.0% | 100 | 1.5 |")


def test_methods_table_spreads_over_seeds(tmp_path: Path) -> None:
    _run_set(tmp_path)
    row = tables.methods_table(tmp_path).splitlines()[2]
    spreads = "95.0 (90.0-100.0) | 2.400 (1.900-2.900) | 2.500 (2.000-3.000)"
    assert row == f"| Qwen2 | SFT | 2 | {spreads} |"


def test_bpb_table_reads_each_text(tmp_path: Path) -> None:
    _run_set(tmp_path)
    lines = tables.bpb_table(tmp_path).splitlines()
    assert lines[2] == "| teacher (SmolLM2-135M-Instruct) | 1.800 | 1.500 | - | - | - | - |"


def _config(folder: Path, steps: int) -> None:
    (folder / "config.yaml").write_text(f"task: distill\ntrainer:\n  max_steps: {steps}\nseed: 0\n")


def test_budget_table_orders_budgets_after_the_fvt_start(tmp_path: Path) -> None:
    _run_set(tmp_path)  # SFT at 100 steps, seeds 0 and 1 (90% and 100% kept)
    for seed in (0, 1):
        _config(tmp_path / "qwen2" / "sft" / f"seed{seed}", 100)
    _write(tmp_path / "zero_shot", "fvt_qwen2", _report([0.3, 0.25, 0.2, 0.15], 100, 3.0), 2.5)
    short = tmp_path / "steps20" / "qwen2" / "sft" / "seed0"  # 0.36 / 0.45 = 80% kept
    _write(short, "downstream", _report([0.48, 0.4, 0.32, 0.24], 100, 2.2), 2.1)
    _config(short, 20)
    only_one_budget = tmp_path / "qwen2" / "alm" / "seed0"
    _write(only_one_budget, "downstream", _report([0.6, 0.5, 0.4, 0.3], 100, 1.0), 1.0)
    _config(only_one_budget, 100)
    lines = tables.budget_table(tmp_path).splitlines()
    assert lines[2:] == [
        "| Qwen2 | SFT | 0 (FVT) | 1 | 50.0 | 2.500 | 3.000 |",
        "| Qwen2 | SFT | 20 | 1 | 80.0 | 2.100 | 2.200 |",
        "| Qwen2 | SFT | 100 | 2 | 95.0 (90.0-100.0) | 2.400 (1.900-2.900) | 2.500 (2.000-3.000) |",
    ]


def test_budget_is_read_from_the_run_config(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text(
        "optim:\n  max_steps: 7\ntrainer:\n  accelerator: cpu\n  max_steps: 300\n"
    )
    assert tables.max_steps(folder) == 300


def test_a_run_still_being_scored_is_left_out_of_the_spreads(tmp_path: Path) -> None:
    _run_set(tmp_path)
    for seed in (0, 1):
        _config(tmp_path / "qwen2" / "sft" / f"seed{seed}", 100)
    training = tmp_path / "qwen2" / "sft" / "seed2"  # trained, copied, not scored yet
    training.mkdir()
    _config(training, 100)
    (tmp_path / "steps20" / "qwen2" / "sft" / "seed0").mkdir(parents=True)
    _config(tmp_path / "steps20" / "qwen2" / "sft" / "seed0", 20)
    assert tables.methods_table(tmp_path).splitlines()[2].startswith("| Qwen2 | SFT | 2 | 95.0 (")
    assert len(tables.budget_table(tmp_path).splitlines()) == 2  # one budget scored: no rows
