"""Seconds per epoch of the downsampling study's models: the app's model against plain Keras.

For each model and downsampling kind of ``experiment=downsampling_study`` (digits resized to
16x16, 1,294 training and 144 validation images per epoch, SGD with momentum) it trains, side
by side in one process,

- app: ``kerascnn.models.build(model, downsample=kind)`` on the app's tf.data pipelines
  (``kerascnn.data.make_pipelines``: shuffling, random translations, prefetch), validated each
  epoch, as ``python -m kerascnn.train`` fits it (the per-epoch checkpoint and MLflow logging
  are left out: ``bench_run_overhead.py`` measures them);
- plain: the same network written with stock Keras layers (``Conv2D``, ``MaxPooling2D``,
  ``AveragePooling2D``, a strided ``Conv2D`` for ``conv``), ``model.fit`` on NumPy arrays. The
  kinds without a stock layer (``pnorm``, ``pnorm_learned``, ``mlp``) are compared with the
  plain network with average pooling, so the ratio is what the kind costs over the cheapest
  pooling.

Each setting (backend, threads, XLA, batch size, precision) runs in its own worker process
(thread pools are fixed once a backend starts); within a worker the two contenders alternate
epoch by epoch (the order flips every round) after one warm-up epoch each, so that drift in
the machine's load hits both. Settings alternate across rounds the same way. Printed per
model, kind and setting: the median seconds per epoch of each contender over the rounds, the
median of the paired per-round ratios app/plain, and the app's images per second.

    .venv/bin/python benchmarks/bench_study_speed.py [--models all_cnn_c,lenet5]
        [--kinds max,conv,pnorm] [--settings base,threads1,jit,batch64,bf16,jax,torch]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name -> worker options; "base" is the study's own setting (TensorFlow, float32, no XLA).
SETTINGS = {
    "base": {},
    "threads1": {"threads": 1},
    "threads2": {"threads": 2},
    "jit": {"jit": True},
    "batch64": {"batch": 64},
    "batch128": {"batch": 128},
    "bf16": {"precision": "mixed_bfloat16"},
    "jax": {"backend": "jax"},
    "torch": {"backend": "torch"},
}
STOCK_KINDS = ("max", "mean", "conv")


def plain_model(keras, name, kind, input_shape, num_classes=10):
    """The study's network from stock Keras layers; non-stock kinds use average pooling."""
    layers = keras.layers
    stock = kind if kind in STOCK_KINDS else "mean"

    def down(x, pool, strides, padding, filters):
        if stock == "max":
            return layers.MaxPooling2D(pool, strides, padding=padding)(x)
        if stock == "mean":
            return layers.AveragePooling2D(pool, strides, padding=padding)(x)
        return layers.Conv2D(filters, pool, strides=strides, padding=padding,
                             activation="relu")(x)

    inputs = keras.Input(input_shape)
    if name == "lenet5":
        x = layers.Conv2D(6, 5, padding="same", activation="relu")(inputs)
        x = down(x, 2, 2, "valid", 6)
        x = layers.Conv2D(16, 5, activation="relu")(x)
        x = down(x, 2, 2, "valid", 16)
        x = layers.Flatten()(x)
        x = layers.Dense(120, activation="relu")(x)
        x = layers.Dense(84, activation="relu")(x)
        x = layers.Dense(num_classes)(x)
    else:  # all_cnn_c: the paper's Table 1 with the study's dropout
        x = layers.Dropout(0.2)(inputs)
        for filters in (96, 192):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = down(x, 3, 2, "same", filters)
            x = layers.Dropout(0.5)(x)
        x = layers.Conv2D(192, 3, activation="relu")(x)
        x = layers.Conv2D(192, 1, activation="relu")(x)
        x = layers.Conv2D(num_classes, 1, activation="relu")(x)
        x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs)


def worker(options: dict) -> dict:
    """Times the two contenders of one model, kind and setting; returns seconds per epoch."""
    backend = options.get("backend", "tensorflow")
    threads = options.get("threads")
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        if backend == "torch":
            import torch

            torch.set_num_threads(threads)
    import keras

    from kerascnn import models
    from kerascnn.data import load_arrays, make_pipelines

    keras.utils.set_random_seed(0)
    if options.get("precision"):
        keras.mixed_precision.set_global_policy(options["precision"])
    batch = options.get("batch", 32)
    pipes = make_pipelines(load_arrays("digits"), image_size=16, batch_size=batch,
                           val_split=0.1, augment=True, seed=0)
    x_train = np.concatenate([x for x, _ in pipes.train.as_numpy_iterator()])
    y_train = np.concatenate([y for _, y in pipes.train.as_numpy_iterator()])
    x_val = np.concatenate([x for x, _ in pipes.val.as_numpy_iterator()])
    y_val = np.concatenate([y for _, y in pipes.val.as_numpy_iterator()])
    name, kind = options["model"], options["kind"]
    contenders = {
        "app": models.build(name, pipes.input_shape, 10, downsample=kind),
        "plain": plain_model(keras, name, kind, pipes.input_shape),
    }
    for model in contenders.values():
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=bool(options.get("jit", False)))

    def epoch(label):
        model = contenders[label]
        start = time.perf_counter()
        if label == "app":
            model.fit(pipes.train, validation_data=pipes.val, epochs=1, verbose=0)
        else:
            model.fit(x_train, y_train, batch_size=batch, validation_data=(x_val, y_val),
                      epochs=1, verbose=0)
        return time.perf_counter() - start

    warm = {label: epoch(label) for label in contenders}  # traces, compiles, first batches
    seconds = {label: [] for label in contenders}
    for round_ in range(options.get("epochs", 2)):
        order = ["app", "plain"] if round_ % 2 == 0 else ["plain", "app"]
        for label in order:
            seconds[label].append(epoch(label))
    return {"seconds": seconds, "warm": warm, "params": contenders["app"].count_params(),
            "images": len(x_train)}


def run_worker(options: dict) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(options)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="all_cnn_c,lenet5")
    parser.add_argument("--kinds", default="max,mean,pnorm,pnorm_learned,mlp,conv")
    parser.add_argument("--settings", default="base,threads1,jit,batch128")
    parser.add_argument("--rounds", type=int, default=2, help="worker processes per setting")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per contender")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    settings = args.settings.split(",")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"--settings: unknown {unknown}; known: {', '.join(SETTINGS)}")
    print(f"{'model':10} {'kind':14} {'setting':9} {'app s/ep':>9} {'plain s/ep':>10} "
          f"{'app/plain':>9} {'app img/s':>9}  (medians over {args.rounds} rounds x "
          f"{args.epochs} epochs)", flush=True)
    for model in args.models.split(","):
        for kind in args.kinds.split(","):
            results = {s: [] for s in settings}
            for round_ in range(args.rounds):
                order = settings if round_ % 2 == 0 else settings[::-1]
                for setting in order:
                    options = {"model": model, "kind": kind, "epochs": args.epochs,
                               **SETTINGS[setting]}
                    results[setting].append(run_worker(options))
            for setting in settings:
                rows = [r for r in results[setting] if "error" not in r]
                if not rows:
                    print(f"{model:10} {kind:14} {setting:9} failed: "
                          f"{results[setting][0]['error']}", flush=True)
                    continue
                app = [s for r in rows for s in r["seconds"]["app"]]
                plain = [s for r in rows for s in r["seconds"]["plain"]]
                ratios = [a / p for a, p in zip(app, plain, strict=True)]
                images = rows[0]["images"]
                print(f"{model:10} {kind:14} {setting:9} {statistics.median(app):9.2f} "
                      f"{statistics.median(plain):10.2f} {statistics.median(ratios):9.2f} "
                      f"{images / statistics.median(app):9.0f}", flush=True)


if __name__ == "__main__":
    main()
