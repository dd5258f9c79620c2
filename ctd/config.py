"""Configuration schemas: dataclasses merged with YAML files and `key=value` overrides.

Defaults live only here. `load_config` merges, in order, the schema, each YAML file and the
command-line dotlist; OmegaConf rejects an unknown key with a "Did you mean" suggestion and a value
of the wrong type, so a typo fails before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")

BYTE_LEVEL = "bytes"
"""Value of `student.tokenizer` that asks for the byte-level tokenizer (`to_byte_level`)."""


@dataclass
class ModelConfig:
    """Where a model and its tokenizer come from."""

    name_or_path: str = ""
    """Local folder or hub id of an `AutoModelForCausalLM` (empty: a built-in demo model)."""
    gguf_file: str | None = None
    """GGUF file inside `name_or_path` (needs the `gguf` extra)."""
    tokenizer: str | None = None
    """Tokenizer folder or hub id; `bytes` for the byte-level tokenizer; None: the model's own."""
    dtype: str = "float32"
    trust_remote_code: bool = False
    revision: str | None = None


@dataclass
class LossConfig:
    """One loss from `ctd.losses.LOSSES` and its weight."""

    name: str = "alm"
    weight: float = 1.0
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the loss module's constructor (checked against its signature)."""


@dataclass
class DataConfig:
    """Text files and how they become aligned batches."""

    train_files: list[str] = field(default_factory=list)
    val_files: list[str] = field(default_factory=list)
    batch_size: int = 4
    max_teacher_length: int = 128
    max_student_length: int = 512
    max_document_bytes: int = 2048
    num_workers: int = 0
    alignment_mode: str = "unconstrained"
    """Chunk mode: `unconstrained`, `space` or `unbiased`."""
    tokenizer_bias: str | None = None
    """Bias statistics (`ctd tokenizer-bias ... --output FILE`), needed by mode `unbiased`."""
    min_text_coverage: float = 0.8
    """Before training, the first training documents must keep at least this share of their
    bytes inside chunks after truncation to the contexts; otherwise an error suggests a
    `max_document_bytes` (0 disables the check)."""
    on_unmappable: str = "raise"
    """A text whose tokens cannot be mapped exactly onto its bytes: `raise` or `skip` it."""


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay."""

    lr: float = 1e-4
    embedding_lr: float | None = None
    """Learning rate of the (new) embeddings; None: `lr`."""
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1


@dataclass
class TrainerConfig:
    """The subset of `lightning.Trainer` arguments that ctd exposes."""

    max_steps: int = 100
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    accumulate_grad_batches: int = 1
    gradient_clip_val: float = 1.0
    val_check_interval: int = 50
    limit_val_batches: int = 8
    log_every_n_steps: int = 5
    fast_dev_run: int = 0
    checkpoint_every_n_steps: int = 100
    """Lightning checkpoints (for resuming) under `default_root_dir/checkpoints`; `last.ckpt`
    is always the newest."""
    max_time: str | None = None
    """Wall-clock limit `DD:HH:MM:SS`; training stops cleanly when it is reached."""
    enable_progress_bar: bool = True
    validate_before_fit: bool = False
    """Also validate the untrained student (logged as `initial/...`)."""
    default_root_dir: str = "runs/ctd"


@dataclass
class FitConfig:
    """`ctd fit`: tokenizer transfer (`mode=transfer`) or cross-tokenizer distillation."""

    mode: str = "transfer"
    """`transfer`: the student is a copy of the teacher with `student.tokenizer`;
    `distill`: the student is its own model (`student.name_or_path`) with its own tokenizer."""
    teacher: ModelConfig = field(default_factory=ModelConfig)
    student: ModelConfig = field(default_factory=lambda: ModelConfig(tokenizer=BYTE_LEVEL))
    losses: list[LossConfig] = field(default_factory=lambda: [LossConfig()])
    loss_aggregation: str = "gradmag_preserve_mag"
    """`gradmag_preserve_mag` (the paper's GradMag) or `weighted_sum`."""
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0
    export_dir: str | None = None
    """Where to `save_pretrained` the student and its tokenizer after training."""
    resume_from: str | None = None
    """A Lightning checkpoint to resume from (same step, same optimizer state)."""


class ConfigError(ValueError):
    """A configuration file or override that does not fit the schema."""


def load_config(
    schema: type[T], yaml_paths: Sequence[str | Path] = (), overrides: Sequence[str] = ()
) -> T:
    """Merge `schema`'s defaults, YAML files and `key=value` overrides into a schema instance.

    Raises:
        ConfigError: naming the file or override and the offending key (with a suggestion).
        FileNotFoundError: a YAML file does not exist.
    """
    merged = OmegaConf.structured(schema)
    for path in yaml_paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        except OmegaConfBaseException as error:
            raise ConfigError(f"{path}: {error}") from None
    try:
        merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as error:
        raise ConfigError(f"command-line override: {error}") from None
    result = OmegaConf.to_object(merged)
    assert isinstance(result, schema)
    return result


def to_yaml(config: object) -> str:
    """The YAML text of a schema instance (saved next to checkpoints)."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))
