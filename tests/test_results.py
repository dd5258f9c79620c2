"""Every table in results/*.md is what its committed script makes of the committed run outputs.

Each `results/summarize_*.py` takes `write --check` and exits non-zero when the markdown it owns
differs from what it would write now.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "results").glob("summarize_*.py"))


def test_every_results_page_has_a_script() -> None:
    pages = {path.stem for path in (ROOT / "results").glob("*.md")}
    owned = {path.stem.removeprefix("summarize_") for path in SCRIPTS}
    assert pages <= owned, f"results pages without a summarize script: {sorted(pages - owned)}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_tables_match_the_committed_run_outputs(script: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script), "write", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
