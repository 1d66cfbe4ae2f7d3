"""Open the run -> log: what a training records in MLflow, and what it prints at its end.

:func:`open_run` starts the run (or continues the one ``trainer.resume`` names) with its
parameters, tags, datasets and model summary, and ends it FINISHED, FAILED or KILLED, never
RUNNING (:func:`~kerascnn.app.tracking.run.tracked_run`); :func:`log_results` records the test
results, the config and the pictures; :func:`report` prints the result and the run's link.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
import mlflow
import tensorflow as tf
from omegaconf import OmegaConf

from kerascnn import __version__
from kerascnn.app.build import Job
from kerascnn.app.checkpoints import checkpoint_dir, remove_checkpoint
from kerascnn.app.config import Config
from kerascnn.app.faults import Interrupted, StoreUnavailable
from kerascnn.app.preflight import Plan
from kerascnn.app.tracking.inputs import log_datasets
from kerascnn.app.tracking.links import run_url, serve_hint
from kerascnn.app.tracking.model import log_keras_model
from kerascnn.app.tracking.pictures import log_pictures
from kerascnn.app.tracking.run import flatten, git_commit, slurm_tags, tracked_run
from kerascnn.app.tracking.store import quiet_store_errors, store_error
from kerascnn.app.tracking.study import trial_tags
from kerascnn.app.tracking.sweep import job_overrides, job_run_name, parent_run_id, record_run_id
from kerascnn.app.tracking.tags import CONFIG_HASH, EPOCHS, RESUMED_FROM_EPOCH


@contextlib.contextmanager
def open_run(conf: Config, plan: Plan, job: Job) -> Iterator[mlflow.ActiveRun]:
    """The training's MLflow run, with what is known before fit; a signal names the run."""
    tags = {**_tags(conf, job), CONFIG_HASH: plan.config_hash}
    if plan.resume_run_id:
        tags[RESUMED_FROM_EPOCH] = str(plan.checkpoint.epoch)
    with tracked_run(plan.tracking_uri, conf.tracking.experiment, _run_name(conf, job),
                     tags=tags, parent_run_id=parent_run_id(),
                     system_metrics=conf.tracking.system_metrics,
                     run_id=plan.resume_run_id) as run:
        record_run_id(run.info.run_id)
        try:
            _log_inputs(conf, plan, job, run)
            yield run
        except Interrupted as exc:  # the run ends KILLED; the message says how to resume it
            raise Interrupted(exc.signum, run.info.run_id) from None


def _log_inputs(conf: Config, plan: Plan, job: Job, run: mlflow.ActiveRun) -> None:
    """Parameters, datasets and the model summary; a resumed run keeps its first parameters
    and tags a longer training."""
    params = flatten(plan.config)
    params.pop("downsample", None)  # a null group: the model's own choice, named below
    params["model.num_params"] = job.model.count_params()
    params["data.image_size"] = job.pipelines.input_shape[0]
    params["downsample.name"] = job.downsample_name
    if plan.resume_run_id:
        logged = run.data.params
        mlflow.log_params({k: v for k, v in params.items() if k not in logged})
        if str(logged.get("trainer.epochs")) != str(conf.trainer.epochs):
            mlflow.set_tag(EPOCHS, str(conf.trainer.epochs))
        return
    mlflow.log_params(params)
    log_datasets(job.arrays, job.pipelines, conf.data.path)
    lines: list[str] = []
    job.model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    mlflow.log_text("\n".join(lines), "model_summary.txt")


def log_results(conf: Config, plan: Plan, job: Job, run: mlflow.ActiveRun,
                results: dict[str, float], history: dict[str, list[float]],
                probabilities: Any) -> None:
    """The test results, the config and overrides, the pictures and the model."""
    try:
        with quiet_store_errors():
            mlflow.log_metrics(results, synchronous=True)
    except Exception as exc:
        run_id = run.info.run_id
        raise StoreUnavailable(
            f"the MLflow store {plan.tracking_uri} stopped accepting writes at the end "
            f"({store_error(exc)}); the checkpoint is kept in {checkpoint_dir(run_id)}: "
            f"resume with trainer.resume={run_id} once the store is back") from exc
    mlflow.log_text(OmegaConf.to_yaml(plan.config), "config/config.yaml")
    mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(job_overrides())),
                    "config/overrides.yaml")
    if conf.tracking.plots:
        log_pictures(job.model, history, job.pipelines, probabilities,
                     run_name=run.info.run_name)
    if conf.tracking.log_model:
        log_keras_model(job.model, job.pipelines.x_test[:2],
                        registered_model_name=conf.tracking.register_model)


def report(run: mlflow.ActiveRun, plan: Plan, job: Job, results: dict[str, float],
           history: dict[str, list[float]]) -> float:
    """Print the result and the run's link; return the objective (best ``val_accuracy``,
    else ``test_accuracy``). The run is FINISHED: its checkpoint goes."""
    remove_checkpoint(run.info.run_id)
    print(f"{run.info.run_name}: test accuracy {results['test_accuracy']:.4f} "
          f"(test error {results['test_error']:.4f}, {job.model.count_params():,} parameters)")
    _print_links(run.info, plan.tracking_uri)
    return float(max(history.get("val_accuracy") or [results["test_accuracy"]]))


def skip_finished(plan: Plan) -> float:
    """``trainer.resume=auto`` found an identical FINISHED run: report it, return its objective."""
    run = plan.finished_run
    record_run_id(run.info.run_id)
    history = mlflow.MlflowClient(plan.tracking_uri).get_metric_history(run.info.run_id,
                                                                        "val_accuracy")
    test_accuracy = run.data.metrics.get("test_accuracy", float("nan"))
    print(f"{run.info.run_name}: already FINISHED with this config (run {run.info.run_id}): "
          f"test accuracy {test_accuracy:.4f}; skipped")
    return float(max([m.value for m in history] or [test_accuracy]))


def _print_links(info: Any, tracking_uri: str) -> None:
    """The run's id and store, and the link that opens it in the MLflow UI."""
    print(f"MLflow run {info.run_id} in {tracking_uri}")
    print(f"Open it: {run_url(tracking_uri, info.experiment_id, info.run_id)}")
    hint = serve_hint(tracking_uri)
    if hint and parent_run_id() is None:  # a sweep's jobs: the sweep hints once, at its end
        print(f"  ({hint})")


def _run_name(conf: Config, job: Job) -> str:
    return conf.tracking.run_name or job_run_name() or (
        f"{conf.model['name']}-{job.downsample_label}-{conf.data.name}")


def _tags(conf: Config, job: Job) -> dict[str, str]:
    runtime = job.runtime
    tags = {
        "model": str(conf.model["name"]), "downsample": job.downsample_label,
        "data": conf.data.name, "hydra.overrides": " ".join(job_overrides()),
        "device": runtime.device, "precision": runtime.precision,
        "jit_compile": str(runtime.jit_compile), "tensorflow.version": tf.__version__,
        "keras.version": keras.__version__, "keras.backend": keras.backend.backend(),
        "kerascnn.version": __version__, **runtime.tags(), **slurm_tags(), **trial_tags(),
    }
    commit = git_commit()
    if commit:
        tags["git.commit"] = commit
    return tags
