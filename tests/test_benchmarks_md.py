"""The generated tables of BENCHMARKS.md are what tests/benchmarks/write_tables.py makes of the
committed figures in tests/benchmarks/figures/ (no benchmark is run here)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "tests" / "benchmarks" / "figures"


def test_tables_match_the_committed_figures() -> None:
    script = runpy.run_path(str(ROOT / "tests" / "benchmarks" / "write_tables.py"))
    page = script["PAGE"].read_text()
    rendered = script["markdown_tables"].render(page, script["TABLES"])
    assert rendered == page, "BENCHMARKS.md is out of date: run tests/benchmarks/write_tables.py"


def test_every_figures_file_has_exactly_one_table() -> None:
    page = (ROOT / "BENCHMARKS.md").read_text()
    marked = re.findall(r"^<!-- table: (\S+) -->$", page, re.MULTILINE)
    assert len(marked) == len(set(marked)), f"a table is marked twice: {marked}"
    recorded = {path.stem for path in FIGURES.glob("*.json")}
    assert set(marked) == recorded, (sorted(set(marked) - recorded), sorted(recorded - set(marked)))
