"""Builders shared by every task, each typed on the one sub-config it reads.

Everything that can fail on bad input fails here, at set-up, before training starts: a missing
model or file, a model and tokenizer that do not belong together, an empty dataset, texts longer
than the contexts.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import itertools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import nn

from ctd.config import DataConfig, ModelConfig, TrainerConfig
from ctd.data import CrossTokenizerDataModule
from ctd.trainers.checkpointing import AtomicCheckpointIO, RngStatesCallback
from ctd.trainers.faults import NonFiniteGuard


def load_model(model_config: ModelConfig) -> tuple[Any, Any]:
    """(model, tokenizer) from a local folder, hub id or GGUF file, checked to belong together.

    Raises:
        ValueError: no `name_or_path`, or a tokenizer with ids the model has no rows for.
        FileNotFoundError: a local path that does not exist.
    """
    from ctd.models import check_model_tokenizer_match, load_causal_lm, load_tokenizer

    if not model_config.name_or_path:
        raise ValueError("a model needs name_or_path (a local folder or a hub id)")
    source, gguf_file = model_config.name_or_path, model_config.gguf_file
    remote, revision = model_config.trust_remote_code, model_config.revision
    model = load_causal_lm(
        source,
        gguf_file=gguf_file,
        dtype=getattr(torch, model_config.dtype),
        trust_remote_code=remote,
        revision=revision,
    )
    tokenizer = load_tokenizer(
        source, gguf_file=gguf_file, trust_remote_code=remote, revision=revision
    )
    check_model_tokenizer_match(model, tokenizer)
    return model, tokenizer


def hidden_size(model: nn.Module) -> int:
    """Width of the model's token embeddings."""
    return int(model.get_input_embeddings().weight.shape[1])  # type: ignore[operator]


def num_embeddings(model: nn.Module) -> int:
    """Rows of the model's token embeddings (at least its tokenizer's vocabulary)."""
    return int(model.get_input_embeddings().weight.shape[0])  # type: ignore[operator]


def build_datamodule(
    data: DataConfig, teacher_tokenizer: Any, student_tokenizer: Any, *, seed: int
) -> CrossTokenizerDataModule:
    """The data module, connected to both tokenizers and set up; checks the texts fit.

    Raises:
        FileNotFoundError / ValueError: a missing or empty file; texts that mostly do not fit
            the contexts (below `data.min_text_coverage`, with a suggested `max_document_bytes`).
    """
    datamodule = CrossTokenizerDataModule(
        data.train_files,
        data.val_files,
        batch_size=data.batch_size,
        max_teacher_length=data.max_teacher_length,
        max_student_length=data.max_student_length,
        seed=seed,
        num_workers=data.num_workers,
        max_document_bytes=data.max_document_bytes,
        shuffle_buffer_size=data.shuffle_buffer_size,
    )
    datamodule.connect(
        teacher_tokenizer,
        student_tokenizer,
        mode=data.alignment_mode,
        bias=data.tokenizer_bias,
        on_unmappable=data.on_unmappable,
    )
    datamodule.setup("fit")
    if data.min_text_coverage > 0:
        check_text_fits_contexts(data, datamodule, teacher_tokenizer, student_tokenizer)
    return datamodule


def check_text_fits_contexts(
    data: DataConfig,
    datamodule: CrossTokenizerDataModule,
    teacher_tokenizer: Any,
    student_tokenizer: Any,
    sample: int = 64,
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
    if coverage < data.min_text_coverage:
        suggestion = suggest_max_document_bytes(
            teacher_tokenizer,
            student_tokenizer,
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


def build_trainer(
    settings: TrainerConfig, *, callbacks: Sequence[Any] = (), logger: bool = True
) -> L.Trainer:
    """A Lightning Trainer; with `logger`, CSV and TensorBoard logs and `last.ckpt` checkpoints.

    Checkpoints are written atomically (`AtomicCheckpointIO`) and hold the RNG states
    (`RngStatesCallback`); with the data module's stateful loader a resumed run is exact.

    `logger=False` gives a throw-away trainer (no logs, no checkpoints), e.g. for a validation
    pass before training.
    """
    root = Path(settings.default_root_dir)
    arguments: dict[str, Any] = {
        "max_steps": settings.max_steps,
        "accelerator": settings.accelerator,
        "devices": settings.devices,
        "num_nodes": settings.num_nodes,
        "strategy": build_strategy(settings),
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
        "logger": _loggers(root) if logger else False,
        "max_time": settings.max_time,
        # no_grad rather than inference mode: metric states then survive validate() -> fit().
        "inference_mode": False,
        "callbacks": [NonFiniteGuard(settings.on_nonfinite), *callbacks],
    }
    if settings.fast_dev_run or not logger:
        arguments["enable_checkpointing"] = False
    else:
        checkpoint = ModelCheckpoint(
            dirpath=root / "checkpoints",
            save_last=True,
            every_n_train_steps=settings.checkpoint_every_n_steps,
        )
        arguments["callbacks"] = [checkpoint, RngStatesCallback(), *arguments["callbacks"]]
        if not str(settings.strategy).startswith("deepspeed"):  # DeepSpeed writes its own
            arguments["plugins"] = [AtomicCheckpointIO()]
    return L.Trainer(**arguments)


def is_decoder_layer(module: nn.Module) -> bool:
    """Whether `module` is a transformer block (Hugging Face names them `*DecoderLayer`)."""
    return type(module).__name__.endswith("DecoderLayer")


def build_strategy(settings: TrainerConfig) -> Any:
    """`settings.strategy`, except `fsdp`: Lightning's FSDPStrategy wrapping each decoder layer.

    FSDP shards every `*DecoderLayer` (teacher and student alike) as its own unit, with
    `use_orig_params=True` because the root unit mixes the frozen teacher's parameters with
    the trainable student's; `trainer.activation_checkpointing` recomputes those layers.
    Mixed precision comes from `trainer.precision` (e.g. `bf16-mixed`). Lightning accepts FSDP
    on GPUs only.
    """
    if settings.strategy != "fsdp":
        return settings.strategy
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=is_decoder_layer)
    return FSDPStrategy(
        auto_wrap_policy=policy,
        activation_checkpointing_policy=policy if settings.activation_checkpointing else None,
        use_orig_params=True,
        state_dict_type="full",
    )


def check_trainer_settings(settings: TrainerConfig) -> None:
    """Let Lightning reject a bad precision, accelerator, strategy or device count now, quietly.

    Raises:
        ValueError / MisconfigurationException: Lightning's own message.
    """
    names = ("lightning.pytorch", "lightning.fabric")
    levels = {name: logging.getLogger(name).level for name in names}
    try:
        for name in names:
            logging.getLogger(name).setLevel(logging.WARNING)
        build_trainer(dataclasses.replace(settings, enable_progress_bar=False), logger=False)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _loggers(root: Path) -> list[Any]:
    loggers: list[Any] = [CSVLogger(root, name="csv")]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(TensorBoardLogger(root, name="tensorboard"))
    return loggers
