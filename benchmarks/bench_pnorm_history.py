"""P-norm pooling now against the same layer at an earlier commit, paired, with the floor.

The issue that asked for a faster PNormPooling2D quoted a ratio to AveragePooling2D measured
"before the last refactor". This benchmark checks such a figure on the machine at hand: it
copies ``kerascnn/layers/{_args,_pnorm,pnorm_pooling2d}.py`` of ``--ref`` (default 71fc714, the
p-norm layer before the pooling base and the windows module) out of git into a package of its
own (``kerascnn_then``), and times, in one process, alternating within every round,
forward + input and weight gradients (``bench_pooling.make_step``) on (64, 32, 32, 64) float32
with 2x2 windows, stride 2, for AveragePooling2D, today's and the old PNormPooling2D(p=3)
(fixed and learned p) and bench_pooling's floor (p=3 with its hand-written gradient and no
rescaling), in graph mode and under XLA. Printed: median ms per step and the per-round ratio to
AveragePooling2D, median [min, max].

    .venv/bin/python benchmarks/bench_pnorm_history.py [--ref 71fc714] [--rounds 5]
        [--clock wall|cpu]

Only for refs whose ``_pnorm.py`` and ``pnorm_pooling2d.py`` import nothing of the package but
``_args`` and ``_pnorm`` (71fc714 and the commits around it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import bench_pooling as bp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerascnn.layers import PNormPooling2D  # noqa: E402

FILES = ("_args.py", "_pnorm.py", "pnorm_pooling2d.py")


def layer_then(ref: str, folder: Path) -> type:
    """The PNormPooling2D class of `ref`, imported as ``kerascnn_then.layers``."""
    layers = folder / "kerascnn_then" / "layers"
    layers.mkdir(parents=True)
    (layers.parent / "__init__.py").write_text("")
    (layers / "__init__.py").write_text("")
    for name in FILES:
        text = subprocess.run(["git", "show", f"{ref}:kerascnn/layers/{name}"], cwd=HERE.parent,
                              check=True, capture_output=True, text=True).stdout
        text = text.replace("from kerascnn.layers import", "from kerascnn_then.layers import")
        text = text.replace('package="kerascnn"', 'package="kerascnn_then"')
        (layers / name).write_text(text)
    sys.path.insert(0, str(folder))
    from kerascnn_then.layers.pnorm_pooling2d import PNormPooling2D as then

    return then


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="71fc714")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--clock", choices=sorted(bp.CLOCKS), default="wall")
    args = parser.parse_args()
    clock = bp.CLOCKS[args.clock]
    with tempfile.TemporaryDirectory() as folder:
        then = layer_then(args.ref, Path(folder))
        variants = {
            bp.BASELINE: lambda: keras.layers.AveragePooling2D(2, 2),
            "PNormPooling2D(p=3), now": lambda: PNormPooling2D(2, 2, p=3),
            f"PNormPooling2D(p=3), {args.ref}": lambda: then(2, 2, p=3),
            "learned p, now": lambda: PNormPooling2D(2, 2, p=3, trainable_p=True),
            f"learned p, {args.ref}": lambda: then(2, 2, p=3, trainable_p=True),
            "floor: |x|^3, no scale": bp.NoScalePNorm,
        }
        rng = np.random.default_rng(0)
        x = tf.constant(rng.standard_normal(bp.SHAPE, dtype=np.float32))
        out = (bp.SHAPE[0], bp.SHAPE[1] // 2, bp.SHAPE[2] // 2, bp.SHAPE[3])
        dy = tf.constant(rng.standard_normal(out, dtype=np.float32))
        for mode, jit in (("graph", False), ("XLA", True)):
            steps = {}
            for name, make in variants.items():
                layer = make()
                layer.build(bp.SHAPE)
                steps[name] = bp.make_step(layer, jit)
                for _ in range(3):  # trace, compile, warm up
                    bp.run_tf_step(steps[name], x, dy)
            times: dict[str, list[float]] = {name: [] for name in steps}
            for _ in range(args.rounds):
                for name, step in steps.items():
                    start = clock()
                    for _ in range(args.repeats):
                        bp.run_tf_step(step, x, dy)
                    times[name].append((clock() - start) / args.repeats)
            print(f"--- {mode}, {args.clock} clock: n = {args.rounds} rounds x {args.repeats} "
                  f"steps; ratio to {bp.BASELINE} per round, median [min, max]")
            for name, values in times.items():
                ratios = [a / b for a, b in zip(values, times[bp.BASELINE], strict=True)]
                print(f"{name:34} {statistics.median(values) * 1e3:8.2f} ms "
                      f"{statistics.median(ratios):6.2f}x [{min(ratios):.2f}, {max(ratios):.2f}]")


if __name__ == "__main__":
    main()
