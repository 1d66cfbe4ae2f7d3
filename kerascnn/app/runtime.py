"""What to train on: the device, the distribution strategy, precision, XLA and the CPU threads,
decided once.

Threads. TensorFlow sizes its thread pools (intra-op, inter-op and tf.data's) for the whole
machine. When a parallel launcher runs several jobs at once (``hydra/launcher=joblib
hydra.launcher.n_jobs=N``) every job would then start pools for every core, and the jobs
oversubscribe the CPU. ``trainer.threads=auto`` gives each job its share instead: cores / N
threads (at least 1) for the intra- and inter-op pools and for the data pipeline (its private
thread pool and the autotuner's CPU budget). Under submitit a job gets ``cpus_per_task``
threads when the launcher sets it. Outside a parallel launcher ``auto`` leaves TensorFlow's own
sizing alone; ``trainer.threads=N`` sets N threads everywhere. The pools can only be sized
before TensorFlow starts its runtime, so :func:`choose_runtime` does it first of all.

Distribution. ``trainer.distribute=auto`` trains with ``MirroredStrategy`` when more than one
GPU is visible; ``mirrored`` forces it (over the GPUs, else over the logical CPU devices, which
is how the tests run it); ``none`` never. ``trainer.batch_size`` stays the global batch, split
over the replicas. Under ``mirrored``, ``jit_compile=auto`` is off: Keras 3 has open reports of
MirroredStrategy with XLA and mixed precision hanging (keras-team/keras#20763), and this
combination has not been verified on GPUs yet; ``trainer.jit_compile=true`` still forces it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from kerascnn.app.launchers import (
    available_cores,
    concurrent_jobs,
    current_launcher,
    launcher_setting,
)

log = logging.getLogger("kerascnn.runtime")

DISTRIBUTE = ("auto", "none", "mirrored")


@dataclass(frozen=True)
class Runtime:
    device: str            # "CPU", or the GPU's name (with a count when several)
    num_gpus: int
    precision: str         # a Keras dtype policy name
    jit_compile: bool
    strategy: Any          # a tf.distribute strategy, or None for the default one
    distribute: str = "none"       # "none" or "mirrored", as resolved
    replicas: int = 1              # replicas in sync (1 without a strategy)
    threads: int | None = None     # threads per pool set for this job; None: TensorFlow's own

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def tags(self) -> dict[str, str]:
        """How the run trains, as MLflow tags."""
        return {"replicas": str(self.replicas), "distribute": self.distribute,
                "threads": str(self.threads) if self.threads else "tensorflow default"}

    def data_options(self) -> tf.data.Options | None:
        """The tf.data options that keep a pipeline within this job's threads, or None."""
        if not self.threads:
            return None
        options = tf.data.Options()
        options.threading.private_threadpool_size = self.threads
        options.autotune.cpu_budget = self.threads
        return options

    def with_data_options(self, pipelines):
        """`pipelines` with :meth:`data_options` applied to its datasets (unchanged when None)."""
        options = self.data_options()
        if options is None:
            return pipelines
        return dataclasses.replace(pipelines, **{
            name: getattr(pipelines, name).with_options(options)
            for name in ("train", "val", "test") if getattr(pipelines, name) is not None})


# ---------------------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------------------


def job_threads(threads: Any = "auto", launcher: Any = None, cores: int | None = None
                ) -> int | None:
    """The threads one job gets: ``threads`` when it is a number, else the job's share.

    Args:
        threads: ``"auto"`` or an int >= 1.
        launcher: Hydra's launcher config (a mapping); None outside a multirun.
        cores: the cores available; defaults to :func:`available_cores`.

    Returns:
        ``threads`` as given; for ``"auto"`` under joblib ``cores // n_jobs`` (n_jobs -1 means
        one job per core, -2 one per core but one, as in joblib), under submitit
        ``cpus_per_task`` when set; else None (TensorFlow's own sizing).
    """
    if threads != "auto":
        return int(threads)
    if launcher is None:
        return None
    cores = cores or available_cores()
    target = str(launcher_setting(launcher, "_target_") or "")
    if "submitit" in target.lower():
        cpus = launcher_setting(launcher, "cpus_per_task")
        return max(1, min(int(cpus), cores)) if cpus else None
    jobs = concurrent_jobs(launcher, cores)
    if jobs <= 1:
        return None
    return max(1, cores // jobs)


def apply_threads(threads: int | None) -> None:
    """Size TensorFlow's intra- and inter-op pools; must run before its runtime starts.

    A second job in the same worker process (joblib reuses workers) finds the pools already
    sized as asked; a pool sized otherwise is left alone with a warning.
    """
    if not threads:
        return
    current = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    if current == (threads, threads):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as exc:  # the runtime started earlier in this process
        log.warning("could not set TensorFlow to %d threads (%s); it keeps %s", threads, exc,
                    current)


# ---------------------------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------------------------


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


def _mirrored_strategy(gpus) -> tf.distribute.Strategy:
    """MirroredStrategy over the GPUs, else over the logical CPU devices."""
    if gpus:
        return tf.distribute.MirroredStrategy()
    devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def choose_runtime(precision: str = "auto", jit_compile: Any = "auto", distribute: str = "auto",
                   threads: Any = "auto") -> Runtime:
    """Resolve ``auto`` settings: mixed float16 and XLA on a capable GPU, float32 and no XLA
    on the CPU (where compiling costs these small models more than it saves); MirroredStrategy
    on several GPUs (and then no XLA unless asked); each job of a parallel sweep its share of
    the cores."""
    if distribute not in DISTRIBUTE:
        raise ValueError(f"Invalid value for argument `distribute`. Expected one of "
                         f"{', '.join(DISTRIBUTE)}. Received: distribute={distribute!r}")
    share = job_threads(threads, current_launcher())
    apply_threads(share)  # first: the pools are fixed once the runtime starts
    gpus = tf.config.list_physical_devices("GPU")
    names = _gpu_names(gpus)
    device = "CPU" if not gpus else (names[0] if len(gpus) == 1 else f"{len(gpus)} x {names[0]}")
    if precision == "auto":
        precision = "mixed_float16" if _supports_float16(gpus) else "float32"
    if distribute == "auto":
        distribute = "mirrored" if len(gpus) > 1 else "none"
    strategy = _mirrored_strategy(gpus) if distribute == "mirrored" else None
    if jit_compile == "auto":
        jit_compile = bool(gpus) and strategy is None
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    return Runtime(device=device, num_gpus=len(gpus), precision=precision,
                   jit_compile=bool(jit_compile), strategy=strategy, distribute=distribute,
                   replicas=replicas, threads=share)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Set Keras' global dtype policy for the models built inside, then restore it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
