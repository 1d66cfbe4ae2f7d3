"""``python -m kerascnn.train [overrides]``: one training, as its steps.

:func:`train` checks the settings (once, into the schema's typed object), opens or resumes the
run, loads the data, builds the model, fits it (with checkpoints, signals and store faults),
evaluates it and logs the results; it returns the best validation accuracy, the objective of
hyper-parameter sweeps. The entry point :func:`main` adds the edges: the runs folder is checked
before Hydra writes into it, and a signal ends the process with the shell's status for it.
"""

from __future__ import annotations

import sys

from kerascnn.app.quiet import quiet_startup

quiet_startup()  # here, not only in the entry module: a launcher's workers import this module

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from kerascnn.app.config import register_configs  # noqa: E402
from kerascnn.app.extras import missing_extra  # noqa: E402
from kerascnn.app.settings import check_settings  # noqa: E402
from kerascnn.app.tracking.store import runs_dir, runs_dir_problem  # noqa: E402

register_configs()
OmegaConf.register_new_resolver("kerascnn_runs_dir", lambda: str(runs_dir()), replace=True)

# Hydra's flags that only print: they write nothing, so they need no writable runs folder.
PRINT_ONLY = ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c",
              "--shell-completion", "-sc")


def train(cfg: DictConfig) -> float:
    """Train one configuration; return the best ``val_accuracy`` (else ``test_accuracy``)."""
    conf = check_settings(cfg)
    # The steps import what takes seconds to load only once the step before has said yes, so
    # that a refusal comes at once: the run to train needs MLflow (not Keras), the training
    # TensorFlow and Keras.
    from kerascnn.app.preflight import check_before_start

    plan = check_before_start(conf)             # a new run, one to resume, or one to skip
    from kerascnn.app.build import prepare
    from kerascnn.app.fit import evaluate, fit
    from kerascnn.app.ownership import owning
    from kerascnn.app.record import log_results, open_run, report, skip_finished
    from kerascnn.app.signals import SignalStop

    if plan.finished_run is not None:
        return skip_finished(plan)
    with owning(plan.resume_run_id), SignalStop() as stop:  # one process trains a run
        job = prepare(conf)                     # load data -> build model
        with open_run(conf, plan, job) as run:  # never left RUNNING
            history = fit(conf, plan, job, run.info.run_id, stop)
            results, probabilities = evaluate(job.model, job.pipelines)
            log_results(conf, plan, job, run, results, history, probabilities)
    return report(run, plan, job, results, history)


@hydra.main(version_base="1.3", config_path="pkg://kerascnn.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    from kerascnn.app.faults import Interrupted  # a small module, here only for the except

    try:
        return train(cfg)
    except Interrupted as exc:  # one line, and the shell's status for a signal (143, 130)
        hint = (f"; run {exc.run_id} ended KILLED, continue it with trainer.resume={exc.run_id}"
                if exc.run_id else "")
        print(f"Stopped by {exc.signal_name}{hint}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None


def main() -> None:
    """The command: a setting that needs an optional extra that is not installed (status 2), and
    a runs folder that cannot be written (status 1), are refused in one line before Hydra looks
    for its plugins or creates its output folder; then :func:`hydra_main`."""
    missing = missing_extra(sys.argv[1:])
    if missing:
        print(f"kerascnn.train: {missing}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    if not any(arg in PRINT_ONLY for arg in sys.argv[1:]):
        problem = runs_dir_problem()
        if problem:
            print(problem, file=sys.stderr, flush=True)
            raise SystemExit(1)
    hydra_main()


if __name__ == "__main__":
    main()
