"""The examples run end to end, offline, in a fresh interpreter."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_hf_trainer_alm_runs_offline(tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),  # an empty cache: nothing can come from it
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "hf_trainer_alm.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    found = re.search(r"final ALM training loss: (\S+)", result.stdout)
    assert found is not None, result.stdout[-2000:]
    assert math.isfinite(float(found.group(1)))
