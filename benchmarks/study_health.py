"""Does every architecture of the study train? Test accuracy over seeds, per model and kind.

Each cell (a model and a downsampling kind) trains with the settings of
``experiment=downsampling_study`` (composed by Hydra, with ``model=``, ``downsample=`` and
``trainer.seed=`` set per run) for every seed, through the app's own ``check_settings`` and
``prepare`` (the same data pipelines, model, optimizer and schedule as ``python -m
kerascnn.train``) but without MLflow, and is evaluated on the test split. Printed per cell:
n, mean, min and max test accuracy, the runs at chance (test accuracy below 0.2 for 10
classes) and seconds per epoch.

    .venv/bin/python benchmarks/study_health.py --cells all_cnn_c:conv,all_cnn_c:max \\
        --seeds 0-9 [--override trainer.epochs=10 ...]

``--cells`` defaults to every model of the study and of the All-CNN and LeNet-5 papers with
every kind it accepts (long: run a few cells at a time). The paper's head initialisation
(class convolution like the others: the dead starts) is
``--override +model.class_kernel_initializer=null +model.class_bias=0``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

KINDS = ("max", "mean", "pnorm", "pnorm3", "pnorm5", "pnorm_learned", "mlp", "conv")
CELLS = {
    "all_cnn_c": KINDS, "model_c": KINDS, "convpool_cnn_c": KINDS, "strided_cnn_c": (None,),
    "nin": KINDS, "lenet5": KINDS, "lenet5_classic": (*KINDS, "subsample"),
}
CHANCE = 0.2


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in text.split(",")]


def parse_cells(text: str | None) -> list[tuple[str, str | None]]:
    if not text:
        return [(model, kind) for model, kinds in CELLS.items() for kind in kinds]
    cells = []
    for item in text.split(","):
        model, _, kind = item.partition(":")
        cells.append((model, kind or None))
    return cells


def train_once(model: str, kind: str | None, seed: int, overrides: list[str]) -> dict:
    """One run with the study's settings: test accuracy, final training loss, s/epoch."""
    from hydra import compose, initialize_config_module

    from kerascnn.app.build import prepare
    from kerascnn.app.config import register_configs
    from kerascnn.app.fit import evaluate
    from kerascnn.app.settings import check_settings

    register_configs()
    chosen = [f"model={model}", f"trainer.seed={seed}", "trainer.verbose=0"]
    if kind:
        chosen.append(f"downsample={kind}")
    with initialize_config_module(config_module="kerascnn.conf", version_base="1.3"):
        cfg = compose(config_name="config",
                      overrides=["experiment=downsampling_study", *chosen, *overrides])
    import keras

    conf = check_settings(cfg)
    job = prepare(conf)  # the optimizer steps the configured schedule per batch
    start = time.perf_counter()
    history = job.model.fit(job.pipelines.train, validation_data=job.pipelines.val,
                            epochs=conf.trainer.epochs, verbose=0)
    seconds = (time.perf_counter() - start) / conf.trainer.epochs
    results, _ = evaluate(job.model, job.pipelines)
    keras.backend.clear_session()
    return {"test_accuracy": results["test_accuracy"], "loss": history.history["loss"][-1],
            "seconds_per_epoch": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", help="model:kind,... (default: all)")
    parser.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,7")
    parser.add_argument("--override", nargs="*", default=[], help="Hydra overrides for all")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    print(f"settings: experiment=downsampling_study {' '.join(args.override)}")
    print(f"{'model':15} {'kind':14} {'n':>3} {'mean':>6} {'min':>6} {'max':>6} "
          f"{'chance':>6} {'s/epoch':>7}  accuracies", flush=True)
    for model, kind in parse_cells(args.cells):
        runs = [train_once(model, kind, seed, args.override) for seed in seeds]
        accuracies = [r["test_accuracy"] for r in runs]
        stuck = sum(a < CHANCE for a in accuracies)
        print(f"{model:15} {kind or '-':14} {len(runs):3d} {statistics.mean(accuracies):6.3f} "
              f"{min(accuracies):6.3f} {max(accuracies):6.3f} {stuck:6d} "
              f"{statistics.median(r['seconds_per_epoch'] for r in runs):7.1f}  "
              f"{' '.join(f'{a:.3f}' for a in accuracies)}", flush=True)


if __name__ == "__main__":
    main()
