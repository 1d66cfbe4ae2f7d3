"""The baseline of ``bench_run_overhead.py``: a plain Keras script that trains LeNet-5 on the
same IDX files as the app, with the same settings, and prints its per-epoch throughput as JSON.

    python benchmarks/plain_lenet5.py DATA_DIR --epochs 10 --batch-size 128 --seed 0
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerascnn import models  # noqa: E402
from kerascnn.app.tracking.callbacks import ThroughputCallback  # noqa: E402  (the app's clock)


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x = read_idx(args.data / "train-images-idx3-ubyte")[..., None].astype("float32") / 255.0
    y = read_idx(args.data / "train-labels-idx1-ubyte").astype("int64")
    x_test = read_idx(args.data / "t10k-images-idx3-ubyte")[..., None].astype("float32") / 255.0
    y_test = read_idx(args.data / "t10k-labels-idx1-ubyte").astype("int64")
    keras.utils.set_random_seed(args.seed)
    model = models.build("lenet5", x.shape[1:], 10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    n_val = int(round(len(x) * 0.1))
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
                        validation_split=0.1, callbacks=[ThroughputCallback(len(x) - n_val)],
                        verbose=0)
    test = model.evaluate(x_test, y_test, batch_size=args.batch_size, return_dict=True,
                          verbose=0)
    print(json.dumps({"images_per_sec": history.history["train_images_per_sec"],
                      "test_accuracy": test["accuracy"]}))


if __name__ == "__main__":
    main()
