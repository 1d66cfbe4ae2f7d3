"""The baseline of ``bench_run_overhead.py``: a plain Keras script that trains LeNet-5 on the
same IDX files as the app, with the same settings, and prints its per-epoch throughput as JSON.

    python benchmarks/plain_lenet5.py DATA_DIR --epochs 10 --batch-size 128 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from kerascnn import models  # noqa: E402
from kerascnn.app.tracking.callbacks import ThroughputCallback  # noqa: E402  (the app's clock)
from kerascnn.data import load_arrays  # noqa: E402  (the IDX files as uint8 arrays)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_arrays("mnist", args.data)
    x, y = data.x_train.astype("float32") / 255.0, data.y_train
    x_test, y_test = data.x_test.astype("float32") / 255.0, data.y_test
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
