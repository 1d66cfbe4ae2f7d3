"""Load data -> build model: what a training fits, made from the checked settings.

:func:`prepare` reads the arrays, decides the runtime (device, precision, threads), builds the
model, makes the pipelines and compiles the model, in that order: the model is built from the
arrays' shape before any image is resized, so an input the architecture cannot take is refused
without that work, and compiled once the pipelines say how many steps an epoch has (the
learning-rate schedule steps per batch). The library checks its own arguments (a builder its
options and input size, the downsampling layer its options);
:func:`~kerascnn.app.config.config_keys` names the config key in its message.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import hydra
import keras

from kerascnn import models
from kerascnn.app.config import Config, config_keys
from kerascnn.app.runtime import Runtime, choose_runtime, dtype_policy
from kerascnn.app.settings import DATA_KEYS, pipeline_args
from kerascnn.data import ArrayData, Pipelines, load_arrays, make_pipelines

log = logging.getLogger("kerascnn.train")


@dataclass(frozen=True)
class Job:
    """What a training fits: the compiled model, its data, and where it runs."""

    arrays: ArrayData        # as loaded: the run's datasets are logged from them
    pipelines: Pipelines
    model: keras.Model
    runtime: Runtime
    downsample_name: str     # the kind (``downsample.name``): pnorm
    downsample_label: str    # in run names and tags: the kind with a p other than 2 (pnorm3)


def prepare(conf: Config) -> Job:
    """Load data -> build model; a setting the library refuses raises ConfigError."""
    with config_keys(DATA_KEYS):
        arrays = load_arrays(conf.data.name, conf.data.path)
    info = _model_info(conf)
    size = _image_size(conf, info, arrays.x_train.shape[1])
    runtime = choose_runtime(conf.trainer.precision, conf.trainer.jit_compile,
                             conf.trainer.distribute, conf.trainer.threads)
    keras.utils.set_random_seed(conf.trainer.seed)
    spec, name = _downsample(conf, info)
    model = build_model(conf, (size, size, arrays.x_train.shape[-1]), arrays.num_classes,
                        spec, runtime)
    with config_keys(DATA_KEYS):
        pipelines = make_pipelines(arrays, image_size=size, **pipeline_args(conf))
    compile_model(conf, model, runtime, math.ceil(pipelines.num_train / conf.trainer.batch_size))
    if conf.trainer.batch_size > pipelines.num_train:
        log.warning("trainer.batch_size=%d is larger than the %d training images: each epoch "
                    "is one step over all of them", conf.trainer.batch_size,
                    pipelines.num_train)
    return Job(arrays, runtime.with_data_options(pipelines), model, runtime, name,
               _label(name, conf.downsample))


def build_model(conf: Config, input_shape: tuple[int, int, int], num_classes: int, spec: Any,
                runtime: Runtime) -> keras.Model:
    """The configured model, built under the runtime."""
    keys = {"spec": "downsample", "downsample": "downsample",
            **{k: f"downsample.{k}" for k in conf.downsample or {}},
            **{k: f"model.{k}" for k in conf.model}}
    with runtime.scope(), dtype_policy(runtime.precision):
        with config_keys(keys, context=f"model={conf.model.get('name')}"):
            return hydra.utils.instantiate(conf.model, input_shape=input_shape,
                                           num_classes=num_classes, downsample=spec,
                                           _convert_="all")


def compile_model(conf: Config, model: keras.Model, runtime: Runtime,
                  steps_per_epoch: int) -> None:
    """Compiles `model` with the configured optimizer, its rate the configured schedule
    (:mod:`kerascnn.app.schedules`, stepped per batch)."""
    schedule = hydra.utils.instantiate(conf.schedule,
                                       base_learning_rate=conf.optimizer.learning_rate,
                                       epochs=conf.trainer.epochs,
                                       steps_per_epoch=steps_per_epoch)
    with runtime.scope(), dtype_policy(runtime.precision):
        optimizer = hydra.utils.instantiate(conf.optimizer, _partial_=True)  # typed: a float
        model.compile(optimizer=optimizer(learning_rate=schedule),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=runtime.jit_compile)


def _model_info(conf: Config) -> models.ModelInfo | None:
    """The registry's entry of a registered model; None for a user's own ``_target_``."""
    if conf.model.get("_target_") != "kerascnn.models.build":
        return None
    with config_keys({"name": "model.name"}):
        return models.info(conf.model["name"])


def _image_size(conf: Config, info: models.ModelInfo | None, native: int) -> int:
    """``data.image_size``, else the model's input size for the embedded digits, else native."""
    if conf.data.image_size:
        return int(conf.data.image_size)
    if conf.data.name == "digits":
        return int(info.input_shape[0]) if info is not None else 28
    return native


def _downsample(conf: Config, info: models.ModelInfo | None) -> tuple[Any, str]:
    """The downsample node as the models' spec, and the kind's name.

    The node passes through unchanged (``{"name": "pnorm", "p": 3}``): the models' factory is
    the one place that knows the kinds and their options. A node with a ``_target_`` is a
    user's own layer class, called like a Keras pooling layer. Without a node the model uses
    its own kind (``none`` for a model without a separate downsampling stage).
    """
    if conf.downsample is None:
        own = (info.default_downsample or "none") if info is not None else "default"
        return None, own
    spec = {k: v for k, v in conf.downsample.items() if v is not None}
    if spec.get("_target_"):
        name = spec.pop("name", None) or spec["_target_"].rsplit(".", 1)[-1]
        with config_keys({}, context="downsample._target_"):
            return hydra.utils.instantiate(spec, _partial_=True), name
    return spec, spec.get("name") or "default"


def _label(name: str, node: dict | None) -> str:
    """The kind, with p when p-norm pooling uses another p than 2 (``pnorm3``)."""
    p = (node or {}).get("p")
    if name == "pnorm" and p is not None and float(p) != 2:
        return f"pnorm{float(p):g}"
    return name
