"""Structured configs of the training app, registered in Hydra's ConfigStore.

The YAML files under ``conf/`` select a schema from here through their defaults list
(``defaults: [/sgd_schema@_here_]``), so every value typed on the command line is
type-checked by OmegaConf when the config is composed, and range-checked by :func:`validate`
before any work starts (``__post_init__`` runs in :func:`omegaconf.OmegaConf.to_object`, not
on overrides).
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.errors import CompactHydraException, InstantiationException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

# What trainer.early_stopping_monitor may watch: the epoch metrics of every run.
MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTE = ("auto", "none", "mirrored")


class ConfigError(CompactHydraException, ValueError):
    """A setting is out of range; the message names the setting and the value.

    Hydra prints it as one line, without a traceback (``HYDRA_FULL_ERROR=1`` shows one).
    """


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key} {rule}, got {value!r}")


@contextlib.contextmanager
def config_keys(keys: Mapping[str, str], context: str | None = None) -> Iterator[None]:
    """Turn a library ``ValueError`` into a :class:`ConfigError` that names config keys.

    The library names the Python argument that received a bad value (``Invalid value for
    argument `val_split` ... Received: val_split=1.5``); ``keys`` maps those arguments to the
    config keys they come from (``{"val_split": "data.val_split"}``), and the message is
    rewritten to name the key (``Invalid value for `data.val_split` ... Received:
    data.val_split=1.5``). A message that names none of them is prefixed with ``context``.
    This is the one place where library errors become configuration errors.
    """
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, InstantiationException) as exc:
        cause = exc
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if not isinstance(cause, ValueError):
            raise
        message, named = " ".join(str(cause).split()), False
        for argument, key in keys.items():
            pattern = rf"(argument `{argument}`|`{argument}`|\b{argument}=)"
            replaced = re.sub(pattern, lambda m, k=key: f"`{k}`" if m.group(0).startswith(
                ("argument", "`")) else f"{k}=", message)
            named |= replaced != message
            message = replaced
        if not named and context:
            message = f"{context}: {message}"
        raise ConfigError(message) from exc


@dataclass
class DataConfig:
    name: str = MISSING
    path: str | None = None
    val_split: float = 0.1
    image_size: int | None = None
    augment: bool = False
    flip: bool | None = None  # null: flips for natural images, none for digits and MNIST
    normalize: str = "unit"
    limit: int | None = None
    # The data library checks these values (kerascnn.data.check_pipeline_args), before loading.


@dataclass
class OptimizerConfig:
    """Common keys of every optimizer; ``_target_`` is the Keras optimizer class."""

    _target_: str = MISSING
    name: str = MISSING
    learning_rate: float = 1e-3
    weight_decay: float | None = None
    clipnorm: float | None = None

    def __post_init__(self) -> None:
        _require(math.isfinite(self.learning_rate) and self.learning_rate > 0,
                 "optimizer.learning_rate", "must be a finite number > 0", self.learning_rate)
        _require(self.weight_decay is None or self.weight_decay >= 0,
                 "optimizer.weight_decay", "must be >= 0", self.weight_decay)
        _require(self.clipnorm is None or self.clipnorm > 0, "optimizer.clipnorm",
                 "must be > 0", self.clipnorm)


@dataclass
class SGDConfig(OptimizerConfig):
    momentum: float = 0.9
    nesterov: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0.0 <= self.momentum < 1.0, "optimizer.momentum", "must be in [0, 1)",
                 self.momentum)


@dataclass
class AdamConfig(OptimizerConfig):
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("beta_1", "beta_2"):
            value = getattr(self, key)
            _require(0.0 <= value < 1.0, f"optimizer.{key}", "must be in [0, 1)", value)
        _require(self.epsilon > 0, "optimizer.epsilon", "must be > 0", self.epsilon)


@dataclass
class ScheduleConfig:
    """A learning-rate schedule; ``_target_`` is a factory in kerascnn.app.schedules."""

    _target_: str = MISSING
    name: str = MISSING


@dataclass
class StepScheduleConfig(ScheduleConfig):
    milestones: list[int] = field(default_factory=lambda: [200, 250, 300])
    factor: float = 0.1

    def __post_init__(self) -> None:
        _require(all(m >= 1 for m in self.milestones), "schedule.milestones",
                 "must be epochs >= 1", list(self.milestones))
        _require(0.0 < self.factor <= 1.0, "schedule.factor", "must be in (0, 1]",
                 self.factor)


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    min_learning_rate: float = 0.0
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        _require(self.min_learning_rate >= 0, "schedule.min_learning_rate", "must be >= 0",
                 self.min_learning_rate)
        _require(self.warmup_epochs >= 0, "schedule.warmup_epochs", "must be >= 0",
                 self.warmup_epochs)


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    precision: str = "auto"
    jit_compile: Any = "auto"
    early_stopping_patience: int | None = None
    early_stopping_monitor: str = "val_loss"
    resume: str | None = None  # a run id: continue it; auto: skip/continue an identical run
    verbose: Any = "auto"      # auto | 0 | 1 | 2 (auto: a progress bar on a terminal, else 2)
    distribute: str = "auto"   # auto | none | mirrored (auto: mirrored on several GPUs)
    threads: Any = "auto"      # auto | N: CPU threads per job (auto: a parallel job's share)

    def __post_init__(self) -> None:
        _require(self.distribute in DISTRIBUTE, "trainer.distribute",
                 f"must be one of {', '.join(DISTRIBUTE)}", self.distribute)
        _require(self.threads == "auto" or (isinstance(self.threads, int)
                                            and not isinstance(self.threads, bool)
                                            and self.threads >= 1),
                 "trainer.threads", "must be auto or an integer >= 1", self.threads)
        _require(self.epochs >= 1, "trainer.epochs", "must be >= 1", self.epochs)
        _require(0 <= self.seed <= 2**32 - 1, "trainer.seed", "must be in [0, 2**32 - 1]",
                 self.seed)
        _require(self.early_stopping_monitor in MONITORS, "trainer.early_stopping_monitor",
                 f"must be a metric the run logs per epoch ({', '.join(MONITORS)})",
                 self.early_stopping_monitor)
        _require(self.resume is None or re.fullmatch(r"auto|[A-Za-z0-9_-]{1,64}",
                                                     str(self.resume)) is not None,
                 "trainer.resume", "must be auto or an MLflow run id", self.resume)
        _require(self.precision in PRECISIONS, "trainer.precision",
                 f"must be one of {', '.join(PRECISIONS)}", self.precision)
        _require(self.jit_compile == "auto" or isinstance(self.jit_compile, bool),
                 "trainer.jit_compile", "must be one of auto, true, false", self.jit_compile)
        _require(self.early_stopping_patience is None or self.early_stopping_patience >= 1,
                 "trainer.early_stopping_patience", "must be >= 1",
                 self.early_stopping_patience)
        _require(self.verbose == "auto" or (self.verbose in (0, 1, 2)
                                            and not isinstance(self.verbose, bool)),
                 "trainer.verbose", "must be auto, 0, 1 or 2", self.verbose)
        if self.verbose == "auto":  # Keras' progress bar where a person watches, else a line
            self.verbose = 1 if sys.stdout.isatty() else 2  # per epoch (logs, Slurm, CI)


@dataclass
class TrackingConfig:
    uri: str | None = None
    experiment: str = "kerascnn"
    run_name: str | None = None
    log_model: bool = True
    plots: bool = True
    system_metrics: bool = True   # MLflow's own system/* metrics (CPU, memory, GPU)
    register_model: str | None = None  # a Model Registry name: each run adds a version

    def __post_init__(self) -> None:
        _require(bool(self.experiment), "tracking.experiment", "must not be empty",
                 self.experiment)
        if self.register_model is not None:
            _require(re.fullmatch(r"[A-Za-z0-9][\w.\- ]{0,254}", self.register_model) is not None,
                     "tracking.register_model", "must be a model name of letters, digits, "
                     "'_', '-', '.' and spaces", self.register_model)
            _require(self.log_model, "tracking.register_model",
                     "needs tracking.log_model=true (only a logged model can be registered)",
                     self.register_model)


@dataclass
class Config:
    """The whole training configuration (``conf/config.yaml``)."""

    model: Any = MISSING
    downsample: Any = None  # passed through to kerascnn.models.make_downsampling unchanged
    data: DataConfig = MISSING
    optimizer: Any = MISSING
    schedule: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def register_configs() -> None:
    """Register the schemas; the YAML files of each group name them in their defaults list.

    The schemas sit at the top of the ConfigStore, in no group, so that ``--help`` does not
    list them among a group's choices; a group's file takes its schema by absolute path into
    its own package (``- /sgd_schema@_here_``).
    """
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    cs.store(name="data_schema", node=DataConfig)
    cs.store(name="sgd_schema", node=SGDConfig)
    cs.store(name="adam_schema", node=AdamConfig)
    cs.store(name="constant_schema", node=ScheduleConfig)
    cs.store(name="step_schema", node=StepScheduleConfig)
    cs.store(name="cosine_schema", node=CosineScheduleConfig)
    cs.store(name="trainer_schema", node=TrainerConfig)
    cs.store(name="tracking_schema", node=TrackingConfig)


def validate(cfg: DictConfig) -> Config:
    """Range-check every setting; raise :class:`ConfigError` naming the first bad one."""
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "config"
        raise ConfigError(f"{key}: {getattr(exc, 'msg', exc)}") from exc
    if not isinstance(obj.model, dict) or not obj.model.get("name"):
        raise ConfigError(f"model must be a config with a name, got {obj.model!r}")
    return obj
