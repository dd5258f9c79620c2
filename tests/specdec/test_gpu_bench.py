"""The prepared GPU script imports and runs on the CPU (a dry run on a tiny random target)."""

from __future__ import annotations

import json

import pytest

from ctd.specdec import gpu_bench


def test_dry_run_on_cpu(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = dict(gpu_bench.SMOLLM2_SHAPE, vocab_size=300, hidden_size=32, intermediate_size=64,
                num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    monkeypatch.setattr(gpu_bench, "SMOLLM2_SHAPE", tiny)
    argv = ["--device", "cpu", "--dtype", "float32", "--drafter", "trim:2", "--gammas", "2",
            "--temperatures", "0,1", "--max-new-tokens", "6", "--limit", "2"]  # fmt: skip
    assert gpu_bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [cell["temperature"] for cell in report["cells"]] == [0.0, 1.0]
    assert report["cells"][0]["matches_baseline"] is True
    assert report["drafter_parameters"] < report["target_parameters"]
