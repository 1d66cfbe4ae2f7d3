"""Forward + backward time of the pooling layers against AveragePooling2D (and torch's LPPool2d).

On float32 inputs of shape (64, 32, 32, 64) (channels_last) it times one forward pass and the
gradient with respect to the input and the layer's weights for, with 2x2 windows, stride 2,

- `AveragePooling2D(2)`, the baseline,
- `PNormPooling2D(2, p=3)` and `PNormPooling2D(2, p=3, trainable_p=True)`,
- the naive composition `power(average_pool(power(abs(x), 3)), 1/3)` with automatic
  differentiation,
- `MLPPooling2D(2)` (the default network, shared by the channels), the same with
  `hidden_units=[16]`, and with one network per channel (`shared=False`),

and, as the overlapping windows of All-CNN and Network in Network, with 3x3 windows, stride
2, "same" padding: `AveragePooling2D`, `PNormPooling2D(p=3)` (fixed and learned p) and
`MLPPooling2D`. Each is
compiled as `tf.function(jit_compile=False)` (graph) and `tf.function(jit_compile=True)` (XLA)
on the TensorFlow backend and compared with `AveragePooling2D` of the same windows in the same
mode. When torch is importable, `torch.nn.LPPool2d(3, 2)` and `torch.nn.AvgPool2d(2)` run on
the same data (NCHW, torch's native layout) with as many threads as TensorFlow uses. Every
figure is the median over rounds x repeats after a warm-up; the variants alternate within
every round so that drift in the machine's load hits all of them.

Targets (2x2 windows): p-norm, fixed or learned p, at most 2x AveragePooling2D in graph mode and
at most 1x under XLA, the fixed p at least 3x faster than torch's LPPool2d (whose p is fixed),
and the default MLPPooling2D at most 4x AveragePooling2D in graph mode.

On a machine shared with other work, wall-clock ratios move with the load of the moment (a
variant that waits for a core looks slower); `--clock cpu` times the CPU seconds the process
spends instead (all its threads together), which keeps the ratios between variants steady
when the cores are contended. The targets are stated for the wall clock on an idle machine.

`--floors` adds two rows that are not layers but bounds on what a p-norm can cost:
"floor: |x|^3, no scale" is the fixed-p pooling with its hand-written gradient but without
the rescaling that keeps large and small inputs finite (what rescaling costs is the difference
to the layer), and "floor: exp(p log|x|)" is the baseline plus the two transcendental passes
over the input that a non-integer p needs, with nothing else of the p-norm.

`--then REF` adds PNormPooling2D(p=3), fixed and learned, as it was at the git commit REF
(``kerascnn/layers/{_args,_pnorm,pnorm_pooling2d}.py`` copied out of git into a package of its
own, for commits whose p-norm layer imports nothing else of the package, such as 71fc714, the
layer before the pooling base and the windows module): a ratio quoted for an earlier version
is checked side by side on the machine at hand.

    .venv/bin/python benchmarks/bench_pooling.py [--rounds 5] [--repeats 10] [--clock cpu]
        [--floors] [--then 71fc714]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from kerascnn.layers import MLPPooling2D, PNormPooling2D  # noqa: E402

SHAPE = (64, 32, 32, 64)
TARGET_RATIO = {"graph": 2.0, "XLA": 1.0}  # p-norm, fixed or learned p, per mode
TARGET_TORCH_SPEEDUP = 3.0
TARGET_RATIO_MLP = 4.0  # default MLPPooling2D, graph mode
GEOMETRIES = {"2x2": ((2, 2), (2, 2), "valid"), "3x3/2 same": ((3, 3), (2, 2), "same")}
BASELINE = "AveragePooling2D"


class NaivePNorm(keras.layers.Layer):
    """The textbook composition, differentiated automatically."""

    def __init__(self, p, **kwargs):
        super().__init__(**kwargs)
        self.p = p

    def call(self, x):
        pooled = ops.average_pool(ops.power(ops.abs(x), self.p), 2, 2, "valid")
        return ops.power(pooled, 1.0 / self.p)


class NoScalePNorm(keras.layers.Layer):
    """The fixed p = 3 pooling of 2x2 windows with its hand-written gradient, less the rescaling
    (so it overflows for |x| above about 1e12): the layer's work without what keeps it finite."""

    def call(self, x):
        _, height, width, channels = x.shape

        @ops.custom_gradient
        def pnorm(x):
            t = x * ops.abs(x)
            s = ops.average_pool(t * x, 2, 2, "valid")
            z = ops.exp(ops.log(s) * (1.0 / 3.0))

            def grad(*args, upstream=None):
                upstream = args[0] if upstream is None else upstream
                g = upstream * z / (ops.maximum(s, 1e-30) * 4.0)
                g = ops.reshape(g, (-1, 1, width // 2, 1, channels))
                dx = ops.reshape(t, (-1, 2, width // 2, 2, channels)) * g
                return ops.reshape(dx, (-1, height, width, channels))

            return z, grad

        return pnorm(x)


class TranscendentalPasses(keras.layers.Layer):
    """AveragePooling2D of ``x + exp(p log|x|)`` for a per-channel p, the powers held constant
    in the gradient: the baseline plus the two transcendental passes a learned p cannot avoid."""

    def build(self, input_shape):
        self.p = self.add_weight(
            shape=(input_shape[-1],), initializer="ones", name="p", trainable=False
        )

    def call(self, x):
        powers = ops.stop_gradient(ops.exp(ops.log(ops.abs(x)) * self.p))
        return ops.average_pool(x + powers, 2, 2, "valid")


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


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


def layer_then(ref, folder):
    """The PNormPooling2D class of the git commit `ref`, imported as ``kerascnn_then.layers``
    from a copy of its p-norm files under `folder`."""
    layers = Path(folder) / "kerascnn_then" / "layers"
    layers.mkdir(parents=True)
    (layers.parent / "__init__.py").write_text("")
    (layers / "__init__.py").write_text("")
    for name in ("_args.py", "_pnorm.py", "pnorm_pooling2d.py"):
        text = subprocess.run(["git", "show", f"{ref}:kerascnn/layers/{name}"],
                              cwd=Path(__file__).resolve().parents[1], check=True,
                              capture_output=True, text=True).stdout
        text = text.replace("from kerascnn.layers import", "from kerascnn_then.layers import")
        (layers / name).write_text(text.replace('package="kerascnn"', 'package="kerascnn_then"'))
    sys.path.insert(0, str(folder))
    from kerascnn_then.layers.pnorm_pooling2d import PNormPooling2D as then

    return then


def tf_variants(floors=False, then=None, ref=None):
    """(geometry, name) -> layer factory; `then` is PNormPooling2D at the commit `ref`."""
    window = GEOMETRIES["2x2"]
    overlap = GEOMETRIES["3x3/2 same"]
    bounds = {
        ("2x2", "floor: |x|^3, no scale"): NoScalePNorm,
        ("2x2", "floor: exp(p log|x|)"): TranscendentalPasses,
    }
    return {
        ("2x2", BASELINE): lambda: keras.layers.AveragePooling2D(*window),
        ("2x2", "PNormPooling2D(p=3)"): lambda: PNormPooling2D(*window, p=3),
        ("2x2", "PNormPooling2D(p=3, learned)"): lambda: PNormPooling2D(
            *window, p=3, trainable_p=True
        ),
        ("2x2", "naive power/avg_pool/power"): lambda: NaivePNorm(3.0),
        ("2x2", "MLPPooling2D (default)"): lambda: MLPPooling2D(*window),
        ("2x2", "MLPPooling2D([16])"): lambda: MLPPooling2D(*window, hidden_units=[16]),
        ("2x2", "MLPPooling2D(shared=False)"): lambda: MLPPooling2D(*window, shared=False),
        ("3x3/2 same", BASELINE): lambda: keras.layers.AveragePooling2D(*overlap),
        ("3x3/2 same", "PNormPooling2D(p=3)"): lambda: PNormPooling2D(*overlap, p=3),
        ("3x3/2 same", "PNormPooling2D(p=3, learned)"): lambda: PNormPooling2D(
            *overlap, p=3, trainable_p=True
        ),
        ("3x3/2 same", "MLPPooling2D (default)"): lambda: MLPPooling2D(*overlap),
        **(bounds if floors else {}),
        **({} if then is None else {
            ("2x2", f"{ref}: PNormPooling2D(p=3)"): lambda: then(*window, p=3),
            ("2x2", f"{ref}: learned p"): lambda: then(*window, p=3, trainable_p=True),
        }),
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


def targets(name, mode, ratio, torch_speedup):
    """The missed targets of one 2x2 row, as messages."""
    misses = []
    if name.startswith("PNormPooling2D"):
        limit = TARGET_RATIO[mode]
        if ratio > limit:
            misses.append(f"{name} [{mode}] over {limit:g}x {BASELINE}")
        if "learned" not in name and torch_speedup and torch_speedup < TARGET_TORCH_SPEEDUP:
            misses.append(f"{name} [{mode}] under {TARGET_TORCH_SPEEDUP:g}x torch LPPool2d")
    if name == "MLPPooling2D (default)" and mode == "graph" and ratio > TARGET_RATIO_MLP:
        misses.append(f"{name} [{mode}] over {TARGET_RATIO_MLP:g}x {BASELINE}")
    return misses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--floors", action="store_true", help="add the two bound rows")
    parser.add_argument("--then", metavar="REF", help="add the p-norm layer of this git commit")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        then = layer_then(args.then, folder) if args.then else None
        run(args, then)


def run(args, then):
    clock = CLOCKS[args.clock]

    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(SHAPE).astype("float32")
    x = tf.constant(x_np)
    upstream = {}
    for geometry, (pool_size, strides, padding) in GEOMETRIES.items():
        out_shape = keras.layers.AveragePooling2D(pool_size, strides, padding).compute_output_shape(
            SHAPE
        )
        upstream[geometry] = rng.standard_normal(out_shape).astype("float32")
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()

    jobs = {}
    for mode, jit in (("graph", False), ("XLA", True)):
        for (geometry, name), make_layer in tf_variants(args.floors, then, args.then).items():
            step = make_step(make_layer(), jit)
            dy = tf.constant(upstream[geometry])
            jobs[(geometry, name, mode)] = lambda step=step, dy=dy: run_tf_step(step, x, dy)
    torch_jobs = torch_steps(x_np, upstream["2x2"], threads)
    if torch_jobs is None:
        print("note: torch is not importable; the torch comparison is skipped")
    else:
        for name, step in torch_jobs.items():
            jobs[("2x2", name, "torch")] = step

    for job in jobs.values():
        for _ in range(args.warmup):
            job()
    times = {key: [] for key in jobs}
    for _ in range(args.rounds):
        for key, job in jobs.items():
            job()  # settle the thread pools after the previous variant
            for _ in range(args.repeats):
                start = clock()
                job()
                times[key].append(clock() - start)
    ms = {key: 1e3 * statistics.median(values) for key, values in times.items()}

    torch_lp = ms.get(("2x2", "torch LPPool2d(3, 2)", "torch"))
    print(
        f"forward+backward, float32 {SHAPE} channels_last; {threads} threads; {args.clock} "
        f"clock; median of {args.rounds} rounds x {args.repeats} repeats"
    )
    header = (
        f"{'windows':11s} {'variant':30s} {'mode':6s} {'ms':>8s} {'vs avg':>8s} "
        f"{'torch LP / this':>16s}"
    )
    print(header)
    print("-" * len(header))
    misses = []
    for (geometry, name, mode), value in ms.items():
        ratio = speedup = None
        if mode != "torch":
            ratio = value / ms[(geometry, BASELINE, mode)]
        if torch_lp and geometry == "2x2" and name.startswith("PNorm"):
            speedup = torch_lp / value
        print(
            f"{geometry:11s} {name:30s} {mode:6s} {value:8.2f} "
            f"{'' if ratio is None else f'{ratio:7.2f}x':>8s} "
            f"{'' if speedup is None else f'{speedup:15.2f}x':>16s}"
        )
        if geometry == "2x2" and ratio is not None:
            misses += targets(name, mode, ratio, speedup)
    print()
    print(
        f"targets (2x2): p-norm, fixed or learned, <= {TARGET_RATIO['graph']:g}x {BASELINE} in "
        f"graph mode, <= {TARGET_RATIO['XLA']:g}x under XLA; fixed p >= "
        f"{TARGET_TORCH_SPEEDUP:g}x faster than torch "
        f"LPPool2d (which has a fixed p); default MLPPooling2D <= {TARGET_RATIO_MLP:g}x "
        f"{BASELINE} in graph mode"
    )
    print("all targets met" if not misses else "missed: " + "; ".join(misses))


if __name__ == "__main__":
    main()
