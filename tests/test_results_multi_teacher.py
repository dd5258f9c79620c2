"""results/multi_teacher.md's table is what its committed script makes of the committed runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_multi_teacher_table_matches_the_committed_run_outputs() -> None:
    script = ROOT / "results" / "summarize_multi_teacher.py"
    result = subprocess.run(
        [sys.executable, str(script), "write", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
