"""Does a learned p learn? LeNet-5 with learned p against fixed p = 3, on MNIST-sized digits.

Not a timing: an accuracy check of ``downsample=pnorm_learned`` with the app's defaults (Adam,
cosine schedule, batch 32, ``downsample.p_lr_scale`` as shipped) for 10 epochs, over seeds.

The data: MNIST cannot be downloaded here, so the embedded digits are made MNIST-sized. The
1,797 8x8 digits are split first (80% train, 20% test, stratified), then each split is grown
by random copies, each digit scaled to 20x20 and placed in a 28x28 frame as MNIST's are, with
a random shift of up to 3 pixels, a rotation of up to 12 degrees and a scale of 0.85-1.15:
8,000 training and 2,000 test images written as IDX files, read by the app with
``data=mnist data.path=DIR``. No test image is a copy of a training digit.

It runs two sweeps over seeds, two jobs at a time (``downsample=pnorm_learned downsample.p=3``
and ``downsample=pnorm3``), then prints ``kerascnn.compare --group-by
downsample.name,downsample.p`` and, per learned run, the last epoch's
``p/<layer>/mean|std|min|max``.

    .venv/bin/python benchmarks/study_learned_p.py [--seeds 3] [--epochs 10] [--runs DIR]
    .venv/bin/python benchmarks/study_learned_p.py --seeds 1 --scales 1,3,10,30   # the scale
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from idx_files import write_mnist_files  # benchmarks/idx_files.py

REPO = Path(__file__).resolve().parents[1]


def mnist_sized_digits(n_train: int, n_test: int, seed: int = 0):
    """(x_train, y_train, x_test, y_test) as uint8 28x28 images and uint8 labels."""
    from scipy import ndimage
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images / 16.0  # 0..1
    x_a, x_b, y_a, y_b = train_test_split(images, digits.target, test_size=0.2,
                                          stratify=digits.target, random_state=seed)
    rng = np.random.default_rng(seed)

    def grow(x, y, n):
        picks = rng.integers(0, len(x), size=n)
        out = np.zeros((n, 28, 28), np.float32)
        for i, k in enumerate(picks):
            digit = ndimage.zoom(x[k], 20 / 8 * rng.uniform(0.85, 1.15), order=1)
            digit = ndimage.rotate(digit, rng.uniform(-12, 12), reshape=False, order=1)
            h, w = digit.shape
            top = int(np.clip((28 - h) // 2 + rng.integers(-3, 4), 0, 28 - h))
            left = int(np.clip((28 - w) // 2 + rng.integers(-3, 4), 0, 28 - w))
            out[i, top:top + h, left:left + w] = digit
        return (np.clip(out, 0, 1) * 255).astype(np.uint8), y[picks].astype(np.uint8)

    return (*grow(x_a, y_a, n_train), *grow(x_b, y_b, n_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--scales", default=None,
                        help="downsample.p_lr_scale values to sweep, e.g. 1,3,10,30 "
                             "(default: the shipped one)")
    parser.add_argument("--runs", type=Path, default=None,
                        help="runs folder (default: a temporary one, removed at the end)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data, runs = Path(tmp) / "data", (args.runs or Path(tmp) / "runs").resolve()
        data.mkdir()
        write_mnist_files(data, *mnist_sized_digits(8000, 2000))
        store = f"sqlite:///{runs / 'mlflow.db'}"
        env = {**os.environ, "KERASCNN_RUNS_DIR": str(runs), "MLFLOW_TRACKING_URI": store,
               "TF_CPP_MIN_LOG_LEVEL": "2", "MLFLOW_DISABLE_TELEMETRY": "true"}
        seeds = ",".join(str(s) for s in range(args.seeds))
        learned = ["downsample=pnorm_learned", "downsample.p=3"]
        if args.scales:
            learned.append(f"downsample.p_lr_scale={args.scales}")
        for variant in (learned, ["downsample=pnorm3"]):
            subprocess.run(
                [sys.executable, "-m", "kerascnn.train", "-m", "data=mnist",
                 f"data.path={data}", *variant, f"trainer.seed={seeds}",
                 f"trainer.epochs={args.epochs}", "trainer.verbose=0", "hydra/launcher=joblib",
                 f"hydra.launcher.n_jobs={args.jobs}"], cwd=REPO, env=env, check=True)
        group_by = "downsample.name,downsample.p" + (",downsample.p_lr_scale" if args.scales
                                                      else "")
        subprocess.run([sys.executable, "-m", "kerascnn.compare", "--group-by", group_by],
                       cwd=REPO, env=env, check=True)

        import mlflow

        client = mlflow.MlflowClient(store)
        experiment = client.get_experiment_by_name("kerascnn").experiment_id
        children = [r for r in client.search_runs([experiment])
                    if "mlflow.parentRunId" in r.data.tags]
        print("\nlearned p after the last epoch (per channel over each layer)")
        for run in sorted(children, key=lambda r: (float(r.data.params.get(
                "downsample.p_lr_scale") or 0), r.data.params.get("trainer.seed", ""))):
            names = sorted(k for k in run.data.metrics if k.startswith("p/"))
            if not names:
                continue
            layers = sorted({k.split("/")[1] for k in names})
            cells = [f"{layer} {run.data.metrics[f'p/{layer}/mean']:.2f} ± "
                     f"{run.data.metrics[f'p/{layer}/std']:.2f} "
                     f"[{run.data.metrics[f'p/{layer}/min']:.2f}, "
                     f"{run.data.metrics[f'p/{layer}/max']:.2f}]" for layer in layers]
            print(f"p_lr_scale {run.data.params.get('downsample.p_lr_scale')} "
                  f"seed {run.data.params.get('trainer.seed')}: test_accuracy "
                  f"{run.data.metrics.get('test_accuracy', float('nan')):.4f}; "
                  + "; ".join(cells))


if __name__ == "__main__":
    main()
