"""`run_fit`: from a `FitConfig` to a trained, exported student.

Everything that can fail on bad input (unknown loss, bad loss arguments, missing files, a model
and tokenizer that do not belong together, an empty dataset) fails here, before training starts.
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import inspect
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import nn

from ctd.config import BYTE_LEVEL, FitConfig, LossConfig, ModelConfig, to_yaml
from ctd.data import CrossTokenizerDataModule
from ctd.losses import LOSSES
from ctd.trainers.transfer import DistillationModule
from ctd.trainers.vocab import SideVocab


@dataclass
class LoadedModels:
    """Teacher and student with their tokenizers."""

    teacher: Any
    teacher_tokenizer: Any
    student: Any
    student_tokenizer: Any
    init_report: dict[str, int] = field(default_factory=dict)


@dataclass
class FitResult:
    """What a run produced."""

    metrics: dict[str, float]
    export_dir: Path | None
    log_dir: Path

    def summary(self) -> str:
        """A short human-readable report."""
        lines = [f"{k}: {v:.4f}" for k, v in sorted(self.metrics.items())]
        lines.append(f"logs: {self.log_dir}")
        if self.export_dir is not None:
            lines.append(f"exported student: {self.export_dir}")
        return "\n".join(lines)


def check_losses(configs: list[LossConfig]) -> None:
    """Fail on an unknown loss name or argument before any model is loaded."""
    from ctd.trainers.loss_wiring import WIRINGS

    if not configs:
        raise ValueError("losses: at least one loss is needed")
    names = [loss.name for loss in configs]
    for loss in configs:
        if loss.name not in LOSSES:
            hint = difflib.get_close_matches(loss.name, list(LOSSES), n=1)
            suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"unknown loss {loss.name!r}.{suggestion} Known: {sorted(LOSSES)}")
        if loss.name not in WIRINGS:
            raise ValueError(
                f"loss {loss.name!r} is not available in `ctd fit` (use {sorted(WIRINGS)}); "
                "call it from ctd.losses directly"
            )
        if names.count(loss.name) > 1:
            raise ValueError(f"loss {loss.name!r} is listed twice")
        accepted = set(inspect.signature(LOSSES[loss.name].__init__).parameters) - {"self"}
        unknown = set(loss.kwargs) - accepted
        if unknown:
            raise ValueError(
                f"loss {loss.name!r}: unknown argument(s) {sorted(unknown)}; "
                f"accepted: {sorted(accepted)}"
            )


def build_losses(
    configs: list[LossConfig], defaults: dict[str, Any] | None = None
) -> tuple[dict[str, nn.Module], dict[str, float]]:
    """Instantiate the configured losses; `defaults` fill accepted arguments left unset."""
    check_losses(configs)
    modules: dict[str, nn.Module] = {}
    weights: dict[str, float] = {}
    for loss in configs:
        accepted = set(inspect.signature(LOSSES[loss.name].__init__).parameters)
        kwargs = {k: v for k, v in (defaults or {}).items() if k in accepted}
        kwargs.update(loss.kwargs)
        modules[loss.name] = LOSSES[loss.name](**kwargs)
        weights[loss.name] = loss.weight
    return modules, weights


def _dtype(name: str) -> torch.dtype:
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} (try float32, bfloat16, float16)")
    return value


def _load(model_config: ModelConfig) -> tuple[Any, Any]:
    from ctd.models import check_model_tokenizer_match, load_causal_lm, load_tokenizer

    if not model_config.name_or_path:
        raise ValueError("a model needs name_or_path (a local folder or a hub id)")
    source, gguf_file = model_config.name_or_path, model_config.gguf_file
    remote, revision = model_config.trust_remote_code, model_config.revision
    model = load_causal_lm(
        source,
        gguf_file=gguf_file,
        dtype=_dtype(model_config.dtype),
        trust_remote_code=remote,
        revision=revision,
    )
    tokenizer = load_tokenizer(
        source, gguf_file=gguf_file, trust_remote_code=remote, revision=revision
    )
    check_model_tokenizer_match(model, tokenizer)
    return model, tokenizer


def load_models(config: FitConfig) -> LoadedModels:
    """Teacher from `config.teacher`; student by copy + new tokenizer, or from its own config."""
    from ctd.models import fvt_init_embeddings, fvt_mapping, load_tokenizer, to_byte_level

    teacher, teacher_tokenizer = _load(config.teacher)
    if config.mode == "distill":
        student, student_tokenizer = _load(config.student)
        return LoadedModels(teacher, teacher_tokenizer, student, student_tokenizer)
    if config.mode != "transfer":
        raise ValueError(f"mode must be 'transfer' or 'distill', not {config.mode!r}")
    student = copy.deepcopy(teacher).to(_dtype(config.student.dtype))
    student.requires_grad_(True)
    if config.student.tokenizer == BYTE_LEVEL:
        student_tokenizer = to_byte_level(teacher_tokenizer)
    elif config.student.tokenizer:
        student_tokenizer = load_tokenizer(
            config.student.tokenizer, trust_remote_code=config.student.trust_remote_code
        )
    else:
        raise ValueError("mode=transfer needs student.tokenizer (`bytes` or a tokenizer path)")
    mapping = fvt_mapping(teacher_tokenizer, student_tokenizer)
    fvt_init_embeddings(student, teacher_tokenizer, student_tokenizer, mapping=mapping)
    report = {str(method): count for method, count in mapping.counts.items()}
    return LoadedModels(teacher, teacher_tokenizer, student, student_tokenizer, report)


def build_datamodule(config: FitConfig, models: LoadedModels) -> CrossTokenizerDataModule:
    """The data module, connected to both tokenizers; fails now if a file is missing or empty."""
    data = config.data
    datamodule = CrossTokenizerDataModule(
        data.train_files,
        data.val_files,
        batch_size=data.batch_size,
        max_teacher_length=data.max_teacher_length,
        max_student_length=data.max_student_length,
        seed=config.seed,
        num_workers=data.num_workers,
        max_document_bytes=data.max_document_bytes,
    )
    collator_options: dict[str, Any] = {"mode": data.alignment_mode}
    if data.tokenizer_bias is not None:
        collator_options["bias"] = data.tokenizer_bias
    if data.on_unmappable != "raise":
        collator_options["on_unmappable"] = data.on_unmappable
    datamodule.connect(models.teacher_tokenizer, models.student_tokenizer, **collator_options)
    datamodule.setup("fit")
    if data.min_text_coverage > 0:
        check_text_fits_contexts(config, models, datamodule)
    return datamodule


def check_text_fits_contexts(
    config: FitConfig, models: LoadedModels, datamodule: CrossTokenizerDataModule, sample: int = 64
) -> float:
    """Share of the first training documents' bytes that survive truncation into chunks.

    Raises:
        ValueError: below `data.min_text_coverage`, naming the lengths and a better
            `data.max_document_bytes`.
    """
    from ctd.data import suggest_max_document_bytes

    assert datamodule.train_dataset is not None
    assert datamodule.collator is not None
    texts = [
        x for x in itertools.islice(iter(datamodule.train_dataset), sample) if isinstance(x, str)
    ]
    if not texts:
        return 1.0
    batch = datamodule.collator(list[Any](texts))
    coverage = float(batch.chunk_num_bytes.sum()) / sum(len(text.encode()) for text in texts)
    data = config.data
    if coverage < data.min_text_coverage:
        suggestion = suggest_max_document_bytes(
            models.teacher_tokenizer,
            models.student_tokenizer,
            texts,
            max_teacher_length=data.max_teacher_length,
            max_student_length=data.max_student_length,
        )
        raise ValueError(
            f"texts are longer than the contexts: only {coverage:.0%} of the first {len(texts)} "
            f"documents' bytes fit data.max_teacher_length={data.max_teacher_length} / "
            f"data.max_student_length={data.max_student_length} with "
            f"data.max_document_bytes={data.max_document_bytes}; set "
            f"data.max_document_bytes={suggestion} (or longer contexts)"
        )
    return coverage


def build_module(config: FitConfig, models: LoadedModels) -> DistillationModule:
    """The LightningModule for `config`."""
    dims = {
        "student_dim": _hidden_size(models.student),
        "teacher_dim": _hidden_size(models.teacher),
    }
    losses, weights = build_losses(config.losses, dims)
    return DistillationModule(
        models.teacher,
        models.student,
        SideVocab.from_tokenizer(models.teacher_tokenizer, _num_embeddings(models.teacher)),
        SideVocab.from_tokenizer(models.student_tokenizer, _num_embeddings(models.student)),
        losses,
        weights,
        loss_aggregation=config.loss_aggregation,
        optim=config.optim,
        max_steps=config.trainer.max_steps,
    )


def _hidden_size(model: nn.Module) -> int:
    return int(model.get_input_embeddings().weight.shape[1])  # type: ignore[operator]


def _num_embeddings(model: nn.Module) -> int:
    return int(model.get_input_embeddings().weight.shape[0])  # type: ignore[operator]


def build_trainer(config: FitConfig, **overrides: Any) -> L.Trainer:
    """A Lightning Trainer with CSV and TensorBoard logs under `trainer.default_root_dir`."""
    settings = config.trainer
    root = Path(settings.default_root_dir)
    loggers: list[Any] = [CSVLogger(root, name="csv")]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(TensorBoardLogger(root, name="tensorboard"))
    arguments: dict[str, Any] = {
        "max_steps": settings.max_steps,
        "accelerator": settings.accelerator,
        "devices": settings.devices,
        "strategy": settings.strategy,
        "precision": settings.precision,
        "accumulate_grad_batches": settings.accumulate_grad_batches,
        "gradient_clip_val": settings.gradient_clip_val,
        "val_check_interval": settings.val_check_interval,
        "check_val_every_n_epoch": None,
        "limit_val_batches": settings.limit_val_batches,
        "log_every_n_steps": settings.log_every_n_steps,
        "fast_dev_run": settings.fast_dev_run or False,
        "enable_progress_bar": settings.enable_progress_bar,
        "default_root_dir": str(root),
        "logger": loggers,
        "max_time": settings.max_time,
        # no_grad rather than inference mode: metric states then survive validate() -> fit().
        "inference_mode": False,
    }
    if settings.fast_dev_run or overrides.get("logger") is False:
        arguments["enable_checkpointing"] = False
    else:
        checkpoint = ModelCheckpoint(
            dirpath=root / "checkpoints",
            save_last=True,
            every_n_train_steps=settings.checkpoint_every_n_steps,
        )
        arguments["callbacks"] = [checkpoint, *overrides.pop("callbacks", [])]
    arguments.update(overrides)
    return L.Trainer(**arguments)


def export_student(models: LoadedModels, export_dir: str | Path) -> Path:
    """`save_pretrained` the student and its tokenizer (safetensors) for plain transformers."""
    from ctd.models import export_pretrained

    return Path(export_pretrained(models.student, models.student_tokenizer, export_dir))


def run_fit(config: FitConfig, callbacks: list[Any] | None = None) -> FitResult:
    """Load, check, train and export as `config` says."""
    L.seed_everything(config.seed, workers=True)
    check_losses(config.losses)  # fail on a bad loss before loading any model
    models = load_models(config)
    datamodule = build_datamodule(config, models)
    module = build_module(config, models)
    trainer = build_trainer(config, callbacks=callbacks or [])
    root = Path(config.trainer.default_root_dir)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(to_yaml(config))
    metrics: dict[str, float] = {}
    if config.trainer.validate_before_fit:
        initial = build_trainer(config, logger=False).validate(module, datamodule=datamodule)
        metrics.update({f"initial/{k}": float(v) for k, v in initial[0].items()})
    trainer.fit(module, datamodule=datamodule, ckpt_path=config.resume_from)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
    (root / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    export_dir = export_student(models, config.export_dir) if config.export_dir else None
    return FitResult(metrics=metrics, export_dir=export_dir, log_dir=root)
