"""What to train on: the device, the distribution strategy, precision and XLA, decided once."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf


@dataclass(frozen=True)
class Runtime:
    device: str            # "CPU", or the GPU's name (with a count when several)
    num_gpus: int
    precision: str         # a Keras dtype policy name
    jit_compile: bool
    strategy: Any          # a tf.distribute strategy, or None for the default one

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def _gpu_names(gpus) -> list[str]:
    names = []
    for gpu in gpus:
        try:
            names.append(tf.config.experimental.get_device_details(gpu).get("device_name", "GPU"))
        except (ValueError, RuntimeError):
            names.append("GPU")
    return names


def _supports_float16(gpus) -> bool:
    """Mixed float16 pays off from compute capability 7.0 (tensor cores) on."""
    for gpu in gpus:
        try:
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        except (ValueError, RuntimeError):
            capability = None
        if not capability or tuple(capability) < (7, 0):
            return False
    return bool(gpus)


def choose_runtime(precision: str = "auto", jit_compile: Any = "auto") -> Runtime:
    """Resolve ``auto`` settings: mixed float16 and XLA on a capable GPU, float32 and no XLA
    on the CPU (where XLA measured about 2x slower for LeNet-5); MirroredStrategy on several
    GPUs."""
    gpus = tf.config.list_physical_devices("GPU")
    names = _gpu_names(gpus)
    device = "CPU" if not gpus else (names[0] if len(gpus) == 1 else f"{len(gpus)} x {names[0]}")
    if precision == "auto":
        precision = "mixed_float16" if _supports_float16(gpus) else "float32"
    if jit_compile == "auto":
        jit_compile = bool(gpus)
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else None
    return Runtime(device=device, num_gpus=len(gpus), precision=precision,
                   jit_compile=bool(jit_compile), strategy=strategy)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Set Keras' global dtype policy for the models built inside, then restore it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
