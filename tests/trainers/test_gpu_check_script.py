"""scripts/gpu_check_scaleout.py is prepared for a GPU machine; on CPU it must at least load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check_scaleout.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_help_names_the_options() -> None:
    done = run("--help")
    assert done.returncode == 0, done.stderr
    for option in ("--strategies", "--precisions", "--steps", "--json"):
        assert option in done.stdout


def test_dry_run_plans_ddp_and_fsdp_in_fp32_and_bf16() -> None:
    done = run("--dry-run", "--steps", "3")
    assert done.returncode == 0, done.stderr
    plans = json.loads(done.stdout.strip().splitlines()[-1])["dry_run"]
    assert sorted(plans) == ["ddp/32-true", "ddp/bf16-mixed", "fsdp/32-true", "fsdp/bf16-mixed"]
    assert "trainer.activation_checkpointing=true" in plans["fsdp/bf16-mixed"]
    assert "trainer.precision=bf16-mixed" in plans["ddp/bf16-mixed"]

    from ctd.config import FitConfig, load_config

    for overrides in plans.values():  # every planned run is a valid ctd fit config
        load_config(FitConfig, overrides=[o for o in overrides if "name_or_path" not in o])
