"""Where LeNet-5's training time goes on a CPU: the app's Keras model against plain PyTorch.

One epoch of LeNet-5 (28x28x1 inputs, batch 128, Adam, the same layers: 5x5 convolutions with
6 and 16 filters, 2x2 max pooling, dense 120, 84, 10) over the same random images, timed
side by side, the variants alternating within every round so that the machine's load hits
them all alike:

- ``keras fit``: the app's model (``kerascnn.models.build("lenet5")``) fitted by
  ``Model.fit`` on a prefetched ``tf.data`` pipeline (as the app does),
- ``keras fit, XLA``: the same compiled with ``jit_compile=True``,
- ``tf train step``: the same model's forward, loss, gradient and Adam update as one
  ``tf.function`` over batches already in memory (no ``fit``, no ``tf.data``): what the
  operations cost without Keras' loop,
- ``torch``: the same network in plain PyTorch (NCHW, its native layout), batches sliced from
  one tensor.

Both frameworks use the same number of threads (``--threads``). Printed: the median seconds per
epoch, images per second, and each variant's ratio to PyTorch.

    .venv/bin/python benchmarks/bench_lenet_frameworks.py [--images 6144] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def keras_variants(x, y, batch, threads):
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from kerascnn import models

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).prefetch(tf.data.AUTOTUNE)

    def fitted(jit):
        model = models.build("lenet5", x.shape[1:], 10)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy", jit_compile=jit)
        return lambda: model.fit(data, epochs=1, verbose=0)

    model = models.build("lenet5", x.shape[1:], 10)
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    batches = [(tf.constant(x[i:i + batch]), tf.constant(y[i:i + batch]))
               for i in range(0, len(x), batch)]

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    def raw():
        for xb, yb in batches:
            step(xb, yb)

    return {"keras fit": fitted(False), "keras fit, XLA": fitted(True), "tf train step": raw}


def torch_variant(x, y, batch, threads):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y.astype("int64"))

    def epoch():
        for i in range(0, len(xt), batch):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(xt[i:i + batch]), yt[i:i + batch])
            loss.backward()
            optimizer.step()

    return {"torch": epoch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=6144)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((args.images, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.images).astype("int32")
    variants = {**keras_variants(x, y, args.batch_size, args.threads),
                **torch_variant(x, y, args.batch_size, args.threads)}
    for run in variants.values():  # warm-up: tracing, compilation, first allocations
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["torch"])
    print(f"LeNet-5, {args.images} images of 28x28x1, batch {args.batch_size}, "
          f"{args.threads} threads, median of {args.rounds} alternating rounds")
    print(f"{'variant':16} {'s/epoch':>8} {'images/s':>9} {'x torch':>8}")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"{name:16} {seconds:8.3f} {args.images / seconds:9.0f} {seconds / base:8.2f}")


if __name__ == "__main__":
    main()
