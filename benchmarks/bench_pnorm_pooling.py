"""Forward + backward time of PNormPooling2D against AveragePooling2D and torch's LPPool2d.

On float32 inputs of shape (64, 32, 32, 64) (channels_last) with 2x2 windows, stride 2, it
times one forward pass and the gradient with respect to the input (and to the learned p) for

- `AveragePooling2D(2)`, the baseline,
- `PNormPooling2D(2, p=3)` and `PNormPooling2D(2, p=3, trainable_p=True)`,
- the naive composition `power(average_pool(power(abs(x), 3)), 1/3)` with automatic
  differentiation,

each compiled as `tf.function(jit_compile=False)` and `tf.function(jit_compile=True)` (XLA) on
the TensorFlow backend, and, when torch is importable, `torch.nn.LPPool2d(3, 2)` and
`torch.nn.AvgPool2d(2)` on the same data (NCHW, torch's native layout) with as many threads as
TensorFlow uses. Every figure is the median over rounds x repeats after a warm-up; the
variants alternate within every round so that drift in the machine's load hits all of them.

Targets: p-norm at most 3x AveragePooling2D in the same mode, learned p at most 4x, and the
fixed p at least 3x faster than torch's LPPool2d (whose p is fixed).

    .venv/bin/python benchmarks/bench_pnorm_pooling.py [--rounds 5] [--repeats 10]
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

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from kerascnn.layers import PNormPooling2D  # noqa: E402

SHAPE = (64, 32, 32, 64)
TARGET_RATIO = 3.0
TARGET_RATIO_LEARNED = 4.0
TARGET_TORCH_SPEEDUP = 3.0


class NaivePNorm(keras.layers.Layer):
    """The textbook composition, differentiated automatically."""

    def __init__(self, p, **kwargs):
        super().__init__(**kwargs)
        self.p = p

    def call(self, x):
        pooled = ops.average_pool(ops.power(ops.abs(x), self.p), 2, 2, "valid")
        return ops.power(pooled, 1.0 / self.p)


def make_step(layer, jit_compile):
    @tf.function(jit_compile=jit_compile)
    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        variables = [v.value for v in layer.trainable_variables]
        grads = tape.gradient(y, [x, *variables], output_gradients=dy)
        # Return the forward output too, so that it is not pruned from the graph.
        return y, grads

    return step


def tf_variants():
    return {
        "AveragePooling2D(2)": lambda: keras.layers.AveragePooling2D(2),
        "PNormPooling2D(2, p=3)": lambda: PNormPooling2D(2, p=3),
        "PNormPooling2D(2, p=3, learned)": lambda: PNormPooling2D(2, p=3, trainable_p=True),
        "naive power/avg_pool/power": lambda: NaivePNorm(3.0),
    }


def run_tf_step(step, x, dy):
    y, grads = step(x, dy)
    y.numpy()
    for grad in grads:
        grad.numpy()


def torch_steps(x_np, dy_np, threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    x = torch.from_numpy(np.ascontiguousarray(x_np.transpose(0, 3, 1, 2))).requires_grad_()
    dy = torch.from_numpy(np.ascontiguousarray(dy_np.transpose(0, 3, 1, 2)))

    def make(module):
        def step():
            x.grad = None
            y = module(x)
            y.backward(dy)
            return y

        return step

    return {
        "torch LPPool2d(3, 2)": make(torch.nn.LPPool2d(3, 2)),
        "torch AvgPool2d(2)": make(torch.nn.AvgPool2d(2)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(SHAPE).astype("float32")
    out_shape = (SHAPE[0], SHAPE[1] // 2, SHAPE[2] // 2, SHAPE[3])
    dy_np = rng.standard_normal(out_shape).astype("float32")
    x, dy = tf.constant(x_np), tf.constant(dy_np)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()

    jobs = {}
    for mode, jit in (("no XLA", False), ("XLA", True)):
        for name, make_layer in tf_variants().items():
            step = make_step(make_layer(), jit)
            jobs[(name, mode)] = lambda step=step: run_tf_step(step, x, dy)
    torch_jobs = torch_steps(x_np, dy_np, threads)
    if torch_jobs is None:
        print("note: torch is not importable; the torch comparison is skipped")
    else:
        for name, step in torch_jobs.items():
            jobs[(name, "torch")] = step

    for job in jobs.values():
        for _ in range(args.warmup):
            job()
    times = {key: [] for key in jobs}
    for _ in range(args.rounds):
        for key, job in jobs.items():
            job()  # settle the thread pools after the previous variant
            for _ in range(args.repeats):
                start = time.perf_counter()
                job()
                times[key].append(time.perf_counter() - start)
    ms = {key: 1e3 * statistics.median(values) for key, values in times.items()}

    torch_lp = ms.get(("torch LPPool2d(3, 2)", "torch"))
    print(f"forward+backward, float32 {SHAPE}, pool 2, stride 2; {threads} threads; "
          f"median of {args.rounds} rounds x {args.repeats} repeats")
    header = f"{'variant':34s} {'mode':8s} {'ms':>8s} {'vs avg':>8s} {'torch LP / this':>16s}"
    print(header)
    print("-" * len(header))
    misses = []
    for (name, mode), value in ms.items():
        if mode == "torch":
            ratio = ""
        else:
            ratio = f"{value / ms[('AveragePooling2D(2)', mode)]:7.2f}x"
        speedup = f"{torch_lp / value:15.2f}x" if torch_lp else ""
        print(f"{name:34s} {mode:8s} {value:8.2f} {ratio:>8s} {speedup:>16s}")
        if name.startswith("PNormPooling2D"):
            limit = TARGET_RATIO_LEARNED if "learned" in name else TARGET_RATIO
            if value / ms[("AveragePooling2D(2)", mode)] > limit:
                misses.append(f"{name} [{mode}] over {limit:g}x AveragePooling2D")
            if "learned" not in name and torch_lp and torch_lp / value < TARGET_TORCH_SPEEDUP:
                misses.append(f"{name} [{mode}] under {TARGET_TORCH_SPEEDUP:g}x torch LPPool2d")
    print()
    print(f"targets: p-norm <= {TARGET_RATIO:g}x AveragePooling2D, learned <= "
          f"{TARGET_RATIO_LEARNED:g}x; fixed p >= {TARGET_TORCH_SPEEDUP:g}x faster than torch "
          "LPPool2d (which has a fixed p)")
    print("all targets met" if not misses else "missed: " + "; ".join(misses))


if __name__ == "__main__":
    main()
