"""Every table in results/*.md is what its committed script makes of the committed run outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_transfer_tables_match_the_committed_run_outputs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "results" / "summarize_transfer.py"), "write", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_drafter_tables_match_the_committed_run_outputs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "results" / "summarize_drafter.py"), "write", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ensemble_tables_match_the_committed_run_outputs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "results" / "summarize_ensemble.py"), "write", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
