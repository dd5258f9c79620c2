"""The generated tables of BENCHMARKS.md are what tests/benchmarks/write_tables.py makes of the
committed figures in tests/benchmarks/figures/ (no benchmark is run here), and a table outside
the marked blocks stands only in a section listed in write_tables.HAND_WRITTEN, with its reason."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "tests" / "benchmarks" / "figures"
MARKED_BLOCK = re.compile(
    r"^<!-- table: \S+ -->\n.*?^<!-- end table -->$", re.DOTALL | re.MULTILINE
)


def _script() -> dict[str, Any]:
    return runpy.run_path(str(ROOT / "tests" / "benchmarks" / "write_tables.py"))


def sections_with_unmarked_tables(page: str) -> set[str]:
    """Headings (`## ...` / `### ...`, without the hashes) of sections that hold a markdown
    table outside every `<!-- table: NAME -->` ... `<!-- end table -->` block."""
    unmarked = MARKED_BLOCK.sub("", page)
    found, heading = set(), ""
    for line in unmarked.splitlines():
        if re.match(r"^#{2,3} ", line):
            heading = line.lstrip("#").strip()
        elif re.match(r"^\|.*\|\s*$", line):
            found.add(heading)
    return found


def test_tables_match_the_committed_figures() -> None:
    script = _script()
    page = script["PAGE"].read_text()
    rendered = script["markdown_tables"].render(page, script["TABLES"])
    assert rendered == page, "BENCHMARKS.md is out of date: run tests/benchmarks/write_tables.py"


def test_every_figures_file_has_exactly_one_table() -> None:
    page = (ROOT / "BENCHMARKS.md").read_text()
    marked = re.findall(r"^<!-- table: (\S+) -->$", page, re.MULTILINE)
    assert len(marked) == len(set(marked)), f"a table is marked twice: {marked}"
    recorded = {path.stem for path in FIGURES.glob("*.json")}
    assert set(marked) == recorded, (sorted(set(marked) - recorded), sorted(recorded - set(marked)))


def test_hand_written_tables_only_where_listed() -> None:
    """A table typed into BENCHMARKS.md by hand fails here unless its section is listed (and a
    listed section that no longer has one must be struck from the list)."""
    listed = set(_script()["HAND_WRITTEN"])
    found = sections_with_unmarked_tables((ROOT / "BENCHMARKS.md").read_text())
    assert found <= listed, f"hand-written tables, not generated: {sorted(found - listed)}"
    assert listed <= found, f"listed as hand-written but generated now: {sorted(listed - found)}"


def test_unmarked_tables_are_found() -> None:
    page = (
        "## A\n\n<!-- table: a -->\n| x |\n|---|\n<!-- end table -->\n\n"
        "## B\n\ntext | not a table\n\n### C\n\n| y |\n|---|\n| 1 |\n"
    )
    assert sections_with_unmarked_tables(page) == {"C"}
