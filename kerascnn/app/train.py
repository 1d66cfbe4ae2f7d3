"""``python -m kerascnn.train [overrides]``: validate -> build -> fit -> evaluate -> log.

The Hydra entry point is thin: :func:`train` checks every setting before any work starts,
builds the data pipelines, the model, the optimizer and the schedule from the config
(``hydra.utils.instantiate`` for whatever names a ``_target_``), trains and evaluates on
TensorFlow, and records the run in MLflow. It returns the best validation accuracy, the
objective of hyper-parameter sweeps.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

from kerascnn.app.quiet import quiet_startup

quiet_startup()  # here, not only in the entry module: a launcher's workers import this module

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from kerascnn.app.config import config_keys, register_configs, validate  # noqa: E402
from kerascnn.app.tracking.store import runs_dir  # noqa: E402

log = logging.getLogger("kerascnn.train")

register_configs()
OmegaConf.register_new_resolver("kerascnn_runs_dir", lambda: str(runs_dir()), replace=True)

# The data library's arguments and the config keys they come from.
DATA_KEYS = {"name": "data.name", "path": "data.path", "val_split": "data.val_split",
             "image_size": "data.image_size", "batch_size": "trainer.batch_size",
             "seed": "trainer.seed", "augment": "data.augment", "flip": "data.flip",
             "normalize": "data.normalize", "limit": "data.limit"}


@dataclass
class Job:
    """Everything a training needs, resolved and checked before an MLflow run starts."""

    config: Any
    pipelines: Any
    model: Any
    optimizer: Any
    schedule: Any
    runtime: Any
    downsample_name: str
    arrays: Any = None     # the loaded arrays the pipelines were made from

    @property
    def downsample_label(self) -> str:
        """The kind, with p when p-norm pooling uses another p than 2 (``pnorm3``)."""
        node = self.config.downsample
        p = node.get("p") if isinstance(node, dict) else None
        if self.downsample_name == "pnorm" and p is not None and float(p) != 2:
            return f"pnorm{float(p):g}"
        return self.downsample_name


def _downsample_spec(cfg: DictConfig) -> tuple[Any, str | None]:
    """The config's downsample node as the models' spec, and the kind's name.

    The node passes through unchanged (``{"name": "pnorm", "p": 3}``): the models' factory is
    the one place that knows the kinds and their options. A node with a ``_target_`` is a
    user's own layer class, called like a Keras pooling layer.
    """
    node = cfg.get("downsample")
    if node is None:
        return None, None
    spec = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items()
            if v is not None}
    if spec.get("_target_"):
        name = spec.pop("name", None) or spec["_target_"].rsplit(".", 1)[-1]
        with config_keys({}, context="downsample._target_"):
            return hydra.utils.instantiate(spec, _partial_=True), name
    return spec, spec.get("name")


def _image_size(cfg: DictConfig, model_info, native: int) -> int:
    """``data.image_size``, else the model's input size for the embedded digits, else native."""
    if cfg.data.get("image_size"):
        return int(cfg.data.image_size)
    if cfg.data.name == "digits":
        return int(model_info.input_shape[0]) if model_info is not None else 28
    return native


def prepare(cfg: DictConfig, plan: Any = None) -> Job:
    """Check every setting and build data, model and optimizer; raise ConfigError on bad input.

    The checks that need no data (settings together, the tracking store, ``trainer.resume``)
    come first, in :func:`kerascnn.app.preflight.check_before_start`; ``plan`` is its answer
    when the caller already asked.
    """
    conf = validate(cfg)
    if plan is None:
        from kerascnn.app.preflight import check_before_start

        plan = check_before_start(cfg, conf)

    import keras

    from kerascnn import models
    from kerascnn.app.runtime import choose_runtime, dtype_policy
    from kerascnn.data import check_pipeline_args, load_arrays, make_pipelines

    model_cfg = cfg.model
    info = None
    if model_cfg.get("_target_") == "kerascnn.models.build":
        with config_keys({"name": "model.name"}):
            info = models.info(model_cfg.name)
    spec, downsample_name = _downsample_spec(cfg)
    downsample_keys = {"spec": "downsample", "downsample": "downsample",
                       **{k: f"downsample.{k}" for k in (cfg.downsample or {})}}
    if info is not None:
        with config_keys(downsample_keys, context=f"model={info.name}"):
            resolved = models.registry.downsample_spec(info.name, spec)
            if resolved is not None:  # the layer checks its options: build one, unused
                models.make_downsampling(resolved, pool_size=2, name="down_check")
        if downsample_name is None:  # the model's own choice; "none" without a separate stage
            downsample_name = info.default_downsample or "none"
    downsample_name = downsample_name or "default"

    data = conf.data
    pipeline_args = dict(batch_size=conf.trainer.batch_size, val_split=data.val_split,
                         augment=data.augment, flip=data.flip, seed=conf.trainer.seed,
                         normalize=data.normalize, limit=data.limit)
    with config_keys(DATA_KEYS):
        check_pipeline_args(image_size=data.image_size, **pipeline_args)  # before loading
        arrays = load_arrays(data.name, data.path)
    image_size = _image_size(cfg, info, arrays.x_train.shape[1])
    if info is not None:  # the builder's own check, before any data is resized
        with config_keys({"input_shape": "data.image_size"}, context="data.image_size"):
            models.registry.check_build_args(
                info.name, (image_size, image_size, arrays.x_train.shape[-1]),
                arrays.num_classes)

    runtime = choose_runtime(conf.trainer.precision, conf.trainer.jit_compile,
                             conf.trainer.distribute, conf.trainer.threads)
    keras.utils.set_random_seed(conf.trainer.seed)
    with config_keys(DATA_KEYS):
        pipelines = make_pipelines(arrays, image_size=image_size, **pipeline_args)
    pipelines = runtime.with_data_options(pipelines)  # a parallel job's share of the threads

    with runtime.scope(), dtype_policy(runtime.precision):
        with config_keys({**downsample_keys, **{k: f"model.{k}" for k in model_cfg}},
                         context=f"model={model_cfg.get('name')}"):
            model = hydra.utils.instantiate(
                model_cfg, input_shape=pipelines.input_shape,
                num_classes=pipelines.num_classes, downsample=spec, _convert_="all")
        optimizer = hydra.utils.instantiate(cfg.optimizer)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], jit_compile=runtime.jit_compile)
    schedule = hydra.utils.instantiate(
        cfg.schedule, base_learning_rate=conf.optimizer.learning_rate,
        epochs=conf.trainer.epochs)
    return Job(conf, pipelines, model, optimizer, schedule, runtime, downsample_name, arrays)


def _run_name(cfg: DictConfig, job: Job) -> str:
    if cfg.tracking.get("run_name"):
        return cfg.tracking.run_name
    from kerascnn.app.tracking.sweep import job_run_name

    return job_run_name() or f"{cfg.model.name}-{job.downsample_label}-{cfg.data.name}"


def _callbacks(job: Job) -> list:
    import keras

    from kerascnn.app.tracking.callbacks import (
        LearnedPCallback,
        ThroughputCallback,
        learned_p_layers,
    )

    trainer = job.config.trainer
    callbacks = [keras.callbacks.LearningRateScheduler(job.schedule),
                 ThroughputCallback(job.pipelines.num_train)]
    if learned_p_layers(job.model):
        callbacks.append(LearnedPCallback())
    if trainer.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=trainer.early_stopping_monitor, patience=trainer.early_stopping_patience,
            restore_best_weights=True))
    return callbacks  # train() adds the signal stop and the checkpoint, which logs each epoch


def _tags(cfg: DictConfig, job: Job) -> dict[str, str]:
    import keras
    import tensorflow as tf

    from kerascnn import __version__
    from kerascnn.app.tracking.run import git_commit, slurm_tags
    from kerascnn.app.tracking.sweep import job_overrides

    tags = {
        "model": str(cfg.model.name), "downsample": job.downsample_label,
        "data": str(cfg.data.name), "hydra.overrides": " ".join(job_overrides()),
        "device": job.runtime.device, "precision": job.runtime.precision,
        "jit_compile": str(job.runtime.jit_compile), "tensorflow.version": tf.__version__,
        "keras.version": keras.__version__, "keras.backend": keras.backend.backend(),
        "kerascnn.version": __version__, **job.runtime.tags(), **slurm_tags(),
    }
    commit = git_commit()
    if commit:
        tags["git.commit"] = commit
    return tags


def evaluate(model: Any, pipelines: Any) -> tuple[dict[str, float], Any]:
    """One pass over the test set: ``test_loss``, ``test_accuracy``, ``test_error`` (the
    compiled loss and accuracy, as ``model.evaluate`` gives them) and the class probabilities,
    which the confusion matrix reuses."""
    import keras
    import numpy as np

    probabilities = np.asarray(model.predict(pipelines.test, verbose=0), dtype="float32")
    labels = pipelines.y_test
    loss = keras.ops.mean(keras.losses.get(model.loss)(labels, probabilities))
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == labels))
    return ({"test_loss": float(keras.ops.convert_to_numpy(loss)), "test_accuracy": accuracy,
             "test_error": 1.0 - accuracy}, probabilities)


def _log_artifacts(cfg: DictConfig, job: Job, history: dict, run_name: str,
                   probabilities: Any) -> None:
    import mlflow

    from kerascnn.app.tracking.sweep import job_overrides

    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(job_overrides())),
                    "config/overrides.yaml")
    if cfg.tracking.plots:
        from kerascnn.app.tracking import pictures

        pictures.log_pictures(job.model, history, job.pipelines, probabilities,
                              run_name=run_name)
    if cfg.tracking.log_model:
        from kerascnn.app.tracking.model import log_keras_model

        log_keras_model(job.model, job.pipelines.x_test[:2],
                        registered_model_name=cfg.tracking.get("register_model"))


def _skip_finished(run: Any, tracking_uri: str) -> float:
    """``trainer.resume=auto`` found an identical FINISHED run: report it, return its objective."""
    import mlflow

    from kerascnn.app.tracking.sweep import record_run_id

    record_run_id(run.info.run_id)
    history = mlflow.MlflowClient(tracking_uri).get_metric_history(run.info.run_id,
                                                                   "val_accuracy")
    metrics = run.data.metrics
    objective = max([m.value for m in history] or [metrics.get("test_accuracy", float("nan"))])
    print(f"{run.info.run_name}: already FINISHED with this config (run {run.info.run_id}): "
          f"test accuracy {metrics.get('test_accuracy', float('nan')):.4f}; skipped")
    return float(objective)


def _log_summary(model: Any) -> None:
    import mlflow

    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    mlflow.log_text("\n".join(lines), "model_summary.txt")


def train(cfg: DictConfig) -> float:
    """Train one configuration; return the best ``val_accuracy`` (else ``test_accuracy``).

    Every epoch ends with a checkpoint (:mod:`kerascnn.app.checkpoints`); ``trainer.resume``
    continues a run from it, SIGTERM/SIGINT stop at the next step (:mod:`kerascnn.app.signals`).
    """
    from kerascnn.app.checkpoints import remove_checkpoint
    from kerascnn.app.faults import Interrupted
    from kerascnn.app.ownership import owning
    from kerascnn.app.preflight import check_before_start
    from kerascnn.app.signals import SignalStop

    plan = check_before_start(cfg, validate(cfg))
    if plan.finished_run is not None:
        return _skip_finished(plan.finished_run, plan.tracking_uri)
    stop = SignalStop()
    try:
        with owning(plan.resume_run_id), stop:  # one process per run, before any work
            job = prepare(cfg, plan)
            results, history, run = _fit(cfg, job, plan, stop)
    except Interrupted as exc:
        exc.run_id = getattr(stop, "run_id", None)
        raise
    remove_checkpoint(run.info.run_id)  # FINISHED: nothing left to resume
    tracking_uri = plan.tracking_uri
    objective = max(history.get("val_accuracy") or [results["test_accuracy"]])
    print(f"{run.info.run_name}: test accuracy {results['test_accuracy']:.4f} "
          f"(test error {results['test_error']:.4f}, {job.model.count_params():,} parameters)")
    _print_links(run, tracking_uri)
    return float(objective)


def _print_links(run: Any, tracking_uri: str) -> None:
    """The run's id and store, and the link that opens it in the MLflow UI."""
    from kerascnn.app.tracking.links import run_url, serve_hint
    from kerascnn.app.tracking.sweep import parent_run_id

    print(f"MLflow run {run.info.run_id} in {tracking_uri}")
    print(f"Open it: {run_url(tracking_uri, run.info.experiment_id, run.info.run_id)}")
    hint = serve_hint(tracking_uri)
    if hint and parent_run_id() is None:  # a sweep's jobs: the sweep hints once, at its end
        print(f"  ({hint})")


def _fit(cfg: DictConfig, job: Job, plan: Any, stop: Any) -> tuple[dict, dict, Any]:
    """The MLflow run around fit and evaluate: (test results, the whole history, the run)."""
    import mlflow

    from kerascnn.app.checkpoints import EpochCheckpoint
    from kerascnn.app.faults import StoreUnavailable
    from kerascnn.app.tracking.inputs import log_datasets
    from kerascnn.app.tracking.run import flatten, tracked_run
    from kerascnn.app.tracking.store import quiet_store_errors, store_error
    from kerascnn.app.tracking.sweep import parent_run_id, record_run_id
    from kerascnn.app.tracking.tags import CONFIG_HASH, EPOCHS, RESUMED_FROM_EPOCH

    tracking_uri = plan.tracking_uri
    params = flatten(OmegaConf.to_container(cfg, resolve=True))
    params.pop("downsample", None)  # a null group: the model's own choice, named below
    params["model.num_params"] = job.model.count_params()
    params["data.image_size"] = job.pipelines.input_shape[0]
    params["downsample.name"] = job.downsample_name
    trainer = job.config.trainer
    tags = {**_tags(cfg, job), CONFIG_HASH: plan.config_hash}
    resumed = plan.resume_run_id
    if resumed:
        tags[RESUMED_FROM_EPOCH] = str(plan.checkpoint.epoch)
    with tracked_run(tracking_uri, cfg.tracking.experiment, _run_name(cfg, job),
                     tags=tags, parent_run_id=parent_run_id(),
                     system_metrics=cfg.tracking.system_metrics, run_id=resumed) as run:
        record_run_id(run.info.run_id)
        stop.run_id = run.info.run_id
        checkpoint = EpochCheckpoint(run.info.run_id, plan.config, tracking_uri,
                                     saved=plan.checkpoint, stop=stop)
        if resumed:  # parameters stay as first logged; a longer training is a tag
            logged = run.data.params
            mlflow.log_params({k: v for k, v in params.items() if k not in logged})
            if str(logged.get("trainer.epochs")) != str(trainer.epochs):
                mlflow.set_tag(EPOCHS, str(trainer.epochs))
        else:
            mlflow.log_params(params)
            log_datasets(job.arrays, job.pipelines, cfg.data.get("path"))
            _log_summary(job.model)
        initial_epoch = checkpoint.restore(job.model, job.pipelines.train)
        job.model.fit(job.pipelines.train, validation_data=job.pipelines.val,
                      epochs=trainer.epochs, initial_epoch=initial_epoch,
                      callbacks=[*_callbacks(job), stop, checkpoint],
                      shuffle=False, verbose=trainer.verbose)  # the pipeline shuffles
        if checkpoint.diverged is not None:
            raise checkpoint.diverged
        stop.raise_if_stopped()
        results, probabilities = evaluate(job.model, job.pipelines)
        try:
            with quiet_store_errors():
                mlflow.log_metrics(results, synchronous=True)
        except Exception as exc:
            raise StoreUnavailable(
                f"the MLflow store {tracking_uri} stopped accepting writes at the end "
                f"({store_error(exc)}); the checkpoint is kept in "
                f"{checkpoint.directory}: resume with trainer.resume={run.info.run_id} once "
                "the store is back") from exc
        _log_artifacts(cfg, job, checkpoint.history, run.info.run_name, probabilities)
    job.checkpoint_seconds = checkpoint.save_seconds  # per epoch, for the overhead figure
    return results, checkpoint.history, run


@hydra.main(version_base="1.3", config_path="pkg://kerascnn.conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from kerascnn.app.faults import Interrupted

    try:
        return train(cfg)
    except Interrupted as exc:  # one line, and the shell's status for a signal (143, 130)
        run_id = getattr(exc, "run_id", None)
        hint = (f"; run {run_id} ended KILLED, continue it with trainer.resume={run_id}"
                if run_id else "")
        print(f"Stopped by {exc.signal_name}{hint}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
