"""Steady-state training throughput of the app against a plain Keras script, in one run.

Both train the same LeNet-5 on the same MNIST-sized data (synthetic images written as IDX
files, read by the app through ``data.path``), with the same batch size and optimizer and no
XLA; the plain script calls ``model.fit`` on NumPy arrays. Both are timed by the same
per-epoch clock (training phase only). Steady state is the median over epochs after the
first (which includes tracing). Rounds alternate plain/app so that drift in the machine's load
hits both. The app's figure includes Hydra, MLflow logging and the tf.data pipeline.

    .venv/bin/python benchmarks/bench_train_throughput.py [--epochs 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from kerascnn import models  # noqa: E402
from kerascnn.app.tracking.callbacks import ThroughputCallback  # noqa: E402
from kerascnn.app.train import train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def write_idx(directory: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        (directory / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x801, n) + labels.tobytes())


def read_train_arrays(directory: Path):
    from kerascnn.data import load_arrays

    data = load_arrays("mnist", str(directory))
    return data.x_train.astype("float32") / 255.0, data.y_train


def plain_keras(x, y, epochs: int, batch_size: int, seed: int) -> list[float]:
    keras.utils.set_random_seed(seed)
    model = models.build("lenet5", (28, 28, 1), 10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False)
    n_val = int(round(len(x) * 0.1))
    clock = ThroughputCallback(len(x) - n_val)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_split=0.1,
                        callbacks=[clock], verbose=0)
    return history.history["train_images_per_sec"]


def app(data_dir: Path, store: str, epochs: int, batch_size: int, seed: int) -> list[float]:
    overrides = ["data=mnist", f"data.path={data_dir}", "data.val_split=0.1",
                 "data.augment=false", "optimizer=adam", "optimizer.learning_rate=0.001",
                 "schedule=constant", f"trainer.epochs={epochs}",
                 f"trainer.batch_size={batch_size}", f"trainer.seed={seed}",
                 "trainer.jit_compile=false", "trainer.precision=float32", "trainer.verbose=0",
                 f"tracking.uri={store}", "tracking.plots=false", "tracking.log_model=false"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    train(cfg)
    client = mlflow.MlflowClient(store)
    run = client.search_runs([client.get_experiment_by_name("kerascnn").experiment_id],
                             order_by=["attributes.start_time DESC"], max_results=1)[0]
    history = client.get_metric_history(run.info.run_id, "train_images_per_sec")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-images", type=int, default=20000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_idx(tmp, args.train_images, 1000)
        x, y = read_train_arrays(tmp)
        store = f"sqlite:///{tmp / 'mlflow.db'}"
        results: dict[str, list[float]] = {"plain Keras": [], "kerascnn.train": []}
        for round_ in range(args.rounds):
            plain = plain_keras(x, y, args.epochs, args.batch_size, round_)
            ours = app(tmp, store, args.epochs, args.batch_size, round_)
            results["plain Keras"].append(statistics.median(plain[1:]))
            results["kerascnn.train"].append(statistics.median(ours[1:]))
            print(f"round {round_ + 1}: plain {results['plain Keras'][-1]:,.0f} img/s, "
                  f"app {results['kerascnn.train'][-1]:,.0f} img/s", flush=True)

    base = statistics.median(results["plain Keras"])
    print(f"\nLeNet-5, {args.train_images:,} 28x28 images (90% trained), batch "
          f"{args.batch_size}, Adam, float32, no XLA, {args.epochs} epochs x {args.rounds} "
          f"rounds; steady state = median of epochs 2..{args.epochs}")
    print(f"{'variant':<16} {'images/s (per round)':<28} {'median':>10} {'ratio':>7}")
    for name, values in results.items():
        per_round = ", ".join(f"{v:,.0f}" for v in values)
        median = statistics.median(values)
        print(f"{name:<16} {per_round:<28} {median:>10,.0f} {median / base:>7.3f}")
    print("target: kerascnn.train >= 0.97 x plain Keras")


if __name__ == "__main__":
    main()
