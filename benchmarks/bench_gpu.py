"""Training throughput on the accelerator: the app against a plain Keras script, with the
runtime's ``auto`` settings (mixed float16 and XLA on a capable GPU) against both off.

Two cases, on random data written in the formats the app reads (``data.path``):

- LeNet-5 on MNIST-sized data (28x28x1, IDX files), batch 128;
- All-CNN-C on CIFAR-sized data (32x32x3, CIFAR-10 python batches), batch 128.

For each case and setting the plain script builds the same model with ``kerascnn.models.build``,
sets the same dtype policy and ``jit_compile``, and calls ``model.fit`` on NumPy arrays; the app
runs ``kerascnn.app.train.train`` on a composed config (Hydra, MLflow, the tf.data pipeline).
Both are timed by the same per-epoch clock (training phase only); the figure is the median
images/s over the epochs after the first (which includes tracing and XLA compilation). Plain and
app alternate within each round. Ratios: app / plain per setting, and auto / off per path.

On a CPU ``auto`` resolves to float32 without XLA, the same as ``off``; ``--tiny`` shrinks the
data and the epochs so that the script can be checked there in a minute or two:

    .venv/bin/python benchmarks/bench_gpu.py                 # on a GPU machine
    .venv/bin/python benchmarks/bench_gpu.py --tiny          # a CPU check of the script
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from hydra import compose, initialize_config_module  # noqa: E402
from idx_files import write_mnist_files  # noqa: E402  (benchmarks/idx_files.py)

from kerascnn import models  # noqa: E402
from kerascnn.app.runtime import choose_runtime, dtype_policy  # noqa: E402
from kerascnn.app.tracking.callbacks import ThroughputCallback  # noqa: E402
from kerascnn.app.train import train  # noqa: E402

# case -> (model, data name, image shape); the data are random images of that size
CASES = {
    "lenet5-mnist": ("lenet5", "mnist", (28, 28, 1)),
    "all_cnn_c-cifar10": ("all_cnn_c", "cifar10", (32, 32, 3)),
}
# setting -> (trainer.precision, trainer.jit_compile)
SETTINGS = {"auto": ("auto", "auto"), "off": ("float32", False)}


def random_images(n: int, shape, seed: int):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, *shape), dtype=np.uint8),
            rng.integers(0, 10, size=n, dtype=np.uint8))


def write_mnist(folder: Path, n_train: int, n_test: int) -> None:
    write_mnist_files(folder, *random_images(n_train, (28, 28), 0),
                      *random_images(n_test, (28, 28), 1))


def write_cifar10(folder: Path, n_train: int, n_test: int) -> None:
    """Five training batches and a test batch in the CIFAR-10 python layout (rows are CHW)."""
    folder = folder / "cifar-10-batches-py"
    folder.mkdir()
    images, labels = random_images(n_train, (32, 32, 3), 0)
    for index, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        rows = images[part].transpose(0, 3, 1, 2).reshape(len(part), -1)
        with open(folder / f"data_batch_{index}", "wb") as f:
            pickle.dump({b"data": rows, b"labels": labels[part].tolist()}, f, protocol=2)
    images, labels = random_images(n_test, (32, 32, 3), 1)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": images.transpose(0, 3, 1, 2).reshape(n_test, -1),
                     b"labels": labels.tolist()}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, f, protocol=2)


def plain_keras(model_name, x, y, setting, epochs, batch_size) -> float:
    """Median images/s of a plain ``model.fit`` on arrays, after the first epoch."""
    runtime = choose_runtime(*SETTINGS[setting], distribute="none", threads="auto")
    keras.utils.set_random_seed(0)
    with dtype_policy(runtime.precision):
        model = models.build(model_name, x.shape[1:], 10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=runtime.jit_compile)
    n_val = int(round(len(x) * 0.1))
    clock = ThroughputCallback(len(x) - n_val)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_split=0.1,
                        callbacks=[clock], verbose=0)
    return statistics.median(history.history["train_images_per_sec"][1:])


def app(model_name, data_name, data_dir, store, setting, epochs, batch_size) -> float:
    precision, jit = SETTINGS[setting]
    overrides = [f"model={model_name}", f"data={data_name}", f"data.path={data_dir}",
                 "data.val_split=0.1", "data.augment=false", "optimizer=adam",
                 "optimizer.learning_rate=0.001", "schedule=constant", f"trainer.epochs={epochs}",
                 f"trainer.batch_size={batch_size}", f"trainer.precision={precision}",
                 f"trainer.jit_compile={str(jit).lower()}", "trainer.distribute=none",
                 "trainer.verbose=0", f"tracking.uri={store}", "tracking.plots=false",
                 "tracking.log_model=false"]
    with initialize_config_module(config_module="kerascnn.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    train(cfg)
    client = mlflow.MlflowClient(store)
    run = client.search_runs([client.get_experiment_by_name("kerascnn").experiment_id],
                             order_by=["attributes.start_time DESC"], max_results=1)[0]
    history = client.get_metric_history(run.info.run_id, "train_images_per_sec")
    return statistics.median([m.value for m in sorted(history, key=lambda m: m.step)][1:])


def read_arrays(data_name: str, data_dir: Path):
    from kerascnn.data import load_arrays

    data = load_arrays(data_name, str(data_dir))
    return data.x_train.astype("float32") / 255.0, data.y_train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="a few hundred images and 3 epochs: checks the script on a CPU")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-images", type=int, default=None)
    parser.add_argument("--cases", default=",".join(CASES),
                        help="comma-separated case names (default: all)")
    args = parser.parse_args()
    epochs = args.epochs or (3 if args.tiny else 6)
    rounds = args.rounds or (1 if args.tiny else 2)
    n_train = args.train_images or (640 if args.tiny else 20000)
    n_test = max(64, n_train // 10)
    batch = 32 if args.tiny and args.batch_size == 128 else args.batch_size

    runtime = choose_runtime("auto", "auto", "none", "auto")
    print(f"device: {runtime.device}; auto = {runtime.precision}, "
          f"jit_compile={runtime.jit_compile}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = f"sqlite:///{tmp / 'mlflow.db'}"
        for case in args.cases.split(","):
            model_name, data_name, shape = CASES[case]
            data_dir = tmp / data_name
            data_dir.mkdir()
            (write_mnist if data_name == "mnist" else write_cifar10)(data_dir, n_train, n_test)
            x, y = read_arrays(data_name, data_dir)
            for setting in SETTINGS:
                plain, ours = [], []
                for round_ in range(rounds):
                    first_plain = round_ % 2 == 0
                    for which in ("plain", "app") if first_plain else ("app", "plain"):
                        if which == "plain":
                            plain.append(plain_keras(model_name, x, y, setting, epochs, batch))
                        else:
                            ours.append(app(model_name, data_name, data_dir, store, setting,
                                            epochs, batch))
                    print(f"{case} {setting} round {round_ + 1}: plain {plain[-1]:,.0f}, "
                          f"app {ours[-1]:,.0f} images/s", flush=True)
                rows.append((case, setting, statistics.median(plain), statistics.median(ours)))

    print(f"\n{n_train:,} random training images (90% trained), batch {batch}, Adam, "
          f"{epochs} epochs x {rounds} rounds; images/s = median of epochs 2..{epochs}; "
          f"device {runtime.device}")
    print(f"{'case':<24} {'setting':<8} {'plain img/s':>12} {'app img/s':>11} {'app/plain':>10} "
          f"{'auto/off plain':>15} {'auto/off app':>13}")
    by_key = {(case, setting): (plain, ours) for case, setting, plain, ours in rows}
    for case, setting, plain, ours in rows:
        off_plain, off_app = by_key.get((case, "off"), (plain, ours))
        print(f"{case:<24} {setting:<8} {plain:>12,.0f} {ours:>11,.0f} {ours / plain:>10.3f} "
              f"{plain / off_plain:>15.3f} {ours / off_app:>13.3f}")


if __name__ == "__main__":
    main()
