"""The offline teacher cache: the same losses as the live teacher, refusals, resuming, the CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from test_fit import _logged_losses

from ctd.cli import main as ctd_main
from ctd.config import FitConfig, load_config
from ctd.data.teacher_cache import TeacherCacheError, TeacherCacheReader, shard_path
from ctd.trainers.distill_wiring import DISTILL_WIRINGS
from ctd.trainers.fit import load_run_config, prepare, run_fit
from ctd.trainers.teacher_cache import open_teacher_cache, write_teacher_cache
from ctd.trainers.wiring import compute_losses


def _overrides(tiny: dict[str, Path], tmp_path: Path, *extra: str) -> list[str]:
    return [
        f"teacher.name_or_path={tiny['teacher']}",
        "student.tokenizer=bytes",
        f"data.train_files=[{tiny['train']}]",
        f"data.val_files=[{tiny['heldout']}]",
        "data.batch_size=3",
        "data.max_teacher_length=40",
        "data.max_student_length=120",
        "data.max_document_bytes=120",
        "losses=[{name: alm}, {name: sft}]",
        "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=2",
        "trainer.val_check_interval=1000",
        f"trainer.default_root_dir={tmp_path / 'run'}",
        *extra,
    ]


def _config(tiny: dict[str, Path], tmp_path: Path, *extra: str) -> FitConfig:
    return load_config(FitConfig, overrides=_overrides(tiny, tmp_path, *extra))


@pytest.fixture(scope="module")
def cache_dir(tiny_models, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """A cache of the tiny teacher, written in batches of 1 (not the training batches)."""
    root = tmp_path_factory.mktemp("cache")
    config = _config(tiny_models, root)
    write_teacher_cache(config, root / "cache", batch_size=1, shard_documents=5, progress=False)
    return root / "cache"


@pytest.mark.parametrize(
    "alm_kwargs",
    [{}, {"append_space": True}, {"append_space": True, "eos_as_space": True}],
    ids=["main_path", "space", "eos"],
)
def test_cached_teacher_gives_the_live_teachers_losses(
    tiny_models, tmp_path, cache_dir, alm_kwargs
) -> None:
    kwargs = ", ".join(f"{key}: true" for key in alm_kwargs)
    config = _config(
        tiny_models, tmp_path, f"losses=[{{name: alm, kwargs: {{{kwargs}}}}}, {{name: sft}}]"
    )
    prepared = prepare(config)
    module = prepared.module
    cached = open_teacher_cache(
        cache_dir, config, module.teacher, prepared.datamodule.collator.teacher_tokenizer
    )
    loader = prepared.datamodule.train_dataloader()
    for batch in itertools.islice(loader, 4):  # shuffled: other rows together than when cached
        live_teacher, student = module.forward_both(
            batch, module.teacher_needs, module.student_needs
        )
        live = compute_losses(DISTILL_WIRINGS, module.losses, batch, live_teacher, student)
        cached_teacher = cached.side_outputs(
            batch.teacher_input_ids, batch.teacher_attention_mask, module.teacher_needs
        )
        from_cache = compute_losses(DISTILL_WIRINGS, module.losses, batch, cached_teacher, student)
        assert live["alm"].item() > 0
        torch.testing.assert_close(from_cache["alm"], live["alm"], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(from_cache["sft"], live["sft"], rtol=0, atol=0)


def test_training_from_the_cache_logs_the_live_losses(tiny_models, tmp_path, cache_dir) -> None:
    steps = [
        "trainer.max_steps=4",
        "trainer.log_every_n_steps=1",
        "trainer.checkpoint_every_n_steps=1000",
        "trainer.val_check_interval=2",
    ]
    live_root, cached_root = tmp_path / "live", tmp_path / "cached"
    live = _config(tiny_models, tmp_path, *steps, f"trainer.default_root_dir={live_root}")
    live_result = run_fit(live)
    cached = _config(
        tiny_models,
        tmp_path,
        *steps,
        f"trainer.default_root_dir={cached_root}",
        f"teacher.cache={cache_dir}",
    )
    prepared = prepare(cached)
    assert not list(prepared.module.teacher.parameters())  # the teacher model is not kept
    result = run_fit(cached)
    live_losses, cached_losses = _logged_losses(live_root), _logged_losses(cached_root)
    assert len(live_losses) == 4
    torch.testing.assert_close(
        torch.tensor(cached_losses), torch.tensor(live_losses), rtol=1e-5, atol=1e-6
    )
    for key in ("val/teacher_bpb", "val/student_bpb"):  # validation reads the cache too
        assert result.metrics[key] == pytest.approx(live_result.metrics[key], rel=1e-5)


def test_cache_stays_within_16_bytes_per_token(cache_dir) -> None:
    """Exact accounting: 3 float32 per token, a 16-byte key and an int64 offset per document."""
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    assert manifest["complete"]
    assert manifest["num_tokens"] > 0
    assert manifest["fields"] == ["token_logprobs", "space_logprobs", "eos_logprobs"]
    headers = 0
    for index in range(manifest["num_shards"]):
        data = shard_path(cache_dir, index).read_bytes()
        headers += 8 + int.from_bytes(data[:8], "little")  # safetensors: u64 size + JSON header
    tokens, documents = manifest["num_tokens"], manifest["num_documents"]
    payload = manifest["num_bytes"] - headers
    assert payload == 12 * tokens + 16 * documents + 8 * (documents + manifest["num_shards"])
    assert payload / tokens <= 16  # these documents have ~15 teacher tokens each


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("data.max_teacher_length=32", "data.max_teacher_length"),
        ("data.val_files=[]", "data files"),
        ("teacher.dtype=bfloat16", "another teacher"),
    ],
)
def test_cache_for_something_else_is_refused(
    tiny_models, tmp_path, cache_dir, override, named
) -> None:
    config = _config(tiny_models, tmp_path, override, f"teacher.cache={cache_dir}")
    with pytest.raises(TeacherCacheError, match=named):
        prepare(config)


def test_cache_of_another_teacher_and_tokenizer_is_refused(
    tiny_models, tmp_path, cache_dir
) -> None:
    config = _config(
        tiny_models,
        tmp_path,
        f"teacher.name_or_path={tiny_models['student']}",
        f"teacher.cache={cache_dir}",
    )
    with pytest.raises(TeacherCacheError, match="another teacher .*another teacher tokenizer"):
        prepare(config)


def test_a_row_that_is_not_cached_is_refused(cache_dir) -> None:
    reader = TeacherCacheReader(cache_dir)
    ids = torch.tensor([[5, 6, 7, 0]])
    with pytest.raises(
        TeacherCacheError, match="batch row 0 .3 teacher tokens. is not in the cache"
    ):
        reader.rows(ids, torch.tensor([[1, 1, 1, 0]]), ["token_logprobs"])


@pytest.mark.parametrize("loss", ["uld", "alm_latents", "dskd"])
def test_losses_reading_more_than_the_cache_are_refused_at_load(
    tiny_models, tmp_path, loss
) -> None:
    overrides = _overrides(
        tiny_models, tmp_path, f"losses=[{{name: {loss}}}]", "teacher.cache=/nonexistent"
    )
    with pytest.raises(ValueError, match=f"loss '{loss}' needs the teacher's"):
        load_run_config(overrides=overrides)


def test_missing_cache_and_student_cache_are_refused(tiny_models, tmp_path) -> None:
    with pytest.raises(TeacherCacheError, match="no teacher cache there"):
        prepare(_config(tiny_models, tmp_path, f"teacher.cache={tmp_path / 'nothing'}"))
    with pytest.raises(ValueError, match="only the teacher's outputs can be cached"):
        load_run_config(overrides=_overrides(tiny_models, tmp_path, f"student.cache={tmp_path}"))


def test_interrupted_cache_resumes_without_redoing_shards(
    tiny_models, tmp_path, cache_dir, monkeypatch
) -> None:
    from ctd.data.teacher_cache import TeacherCacheWriter

    config = _config(tiny_models, tmp_path)
    directory = tmp_path / "partial"
    original = TeacherCacheWriter.write_shard

    def fail_on_third(self, index, keys, values):  # type: ignore[no-untyped-def]
        if index == 2:
            raise KeyboardInterrupt
        return original(self, index, keys, values)

    monkeypatch.setattr(TeacherCacheWriter, "write_shard", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        write_teacher_cache(config, directory, batch_size=2, shard_documents=5, progress=False)
    with pytest.raises(TeacherCacheError, match="unfinished .2 shards written"):
        TeacherCacheReader(directory)
    finished = {index: shard_path(directory, index).stat().st_mtime_ns for index in (0, 1)}
    monkeypatch.setattr(TeacherCacheWriter, "write_shard", original)
    summary = write_teacher_cache(
        config, directory, batch_size=2, shard_documents=5, progress=False
    )
    assert summary["skipped_shards"] == 2
    assert summary["written_shards"] == summary["num_shards"] - 2 > 0
    assert {i: shard_path(directory, i).stat().st_mtime_ns for i in (0, 1)} == finished
    reference = json.loads((cache_dir / "manifest.json").read_text())
    for key in ("num_documents", "num_tokens", "num_shards", "fingerprint"):
        assert summary[key] == reference[key]
    with pytest.raises(TeacherCacheError, match="started with shard_documents=5"):
        write_teacher_cache(config, directory, batch_size=2, shard_documents=7, progress=False)


def test_cli_writes_a_cache_and_reports_json(tiny_models, tmp_path, capsys) -> None:
    overrides = _overrides(tiny_models, tmp_path, f"teacher.cache={tmp_path / 'cli'}")
    assert ctd_main(["cache-teacher", "--no-progress", "--json", *overrides]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["complete"]
    assert summary["num_tokens"] > 0
    assert summary["written_shards"] == 1
    assert ctd_main(["cache-teacher", *overrides[:-1]]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ctd cache-teacher: error: give the cache directory")
