"""What a tracked run costs over a plain Keras script doing the same job, as whole processes.

The case: LeNet-5 on MNIST-sized data (synthetic 28x28 images written as IDX files: 8,000
for training, 2,000 for test), 10 epochs, batch 128, Adam 1e-3, float32, no XLA, on the CPU.

- baseline: ``benchmarks/plain_lenet5.py`` (``model.fit`` on NumPy arrays, 10% held out for
  validation, ``model.evaluate`` on the test set);
- app: ``python -m kerascnn.train data=mnist data.path=...`` with the app's tracking as it
  ships (SQLite store, already created; parameters, metrics, datasets, system metrics,
  checkpoint every epoch, pictures, the model in MLflow's Keras flavour).

Both clock the training phase of each epoch with the same callback. Rounds alternate the two
(the order flips every round) so that drift in the machine's load hits both; each round gives
a paired ratio. Printed: whole-process wall time, steady-state throughput (images over time
for the epochs after the first) and the epoch-to-epoch spread ((max - min) / median over the
epochs after the first), and the medians of the per-round ratios.

    .venv/bin/python benchmarks/bench_run_overhead.py [--rounds 4] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from idx_files import write_mnist_files  # benchmarks/idx_files.py

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MLFLOW_DISABLE_TELEMETRY": "true",
       "PYTHONPATH": str(REPO)}


def write_idx(directory: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """Class-dependent blobs plus noise, so that the model learns something."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 255, size=(10, 28, 28))
    splits = []
    for n in (n_train, n_test):
        labels = rng.integers(0, 10, size=n)
        images = np.clip(centres[labels] + rng.normal(0, 60, size=(n, 28, 28)), 0, 255)
        splits += [images, labels]
    write_mnist_files(directory, *splits)


def timed(args: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} ... failed:\n{done.stderr[-3000:]}")
    return elapsed, done.stdout


def plain(data: Path, epochs: int, seed: int) -> tuple[float, list[float]]:
    elapsed, out = timed([sys.executable, str(REPO / "benchmarks" / "plain_lenet5.py"),
                          str(data), f"--epochs={epochs}", "--batch-size=128",
                          f"--seed={seed}"], ENV)
    return elapsed, json.loads(out.strip().splitlines()[-1])["images_per_sec"]


def app(data: Path, runs: Path, epochs: int, seed: int) -> tuple[float, list[float]]:
    import mlflow

    store = f"sqlite:///{runs / 'mlflow.db'}"
    elapsed, _ = timed(
        [sys.executable, "-m", "kerascnn.train", "data=mnist", f"data.path={data}",
         "data.val_split=0.1", "data.augment=false", "optimizer=adam",
         "optimizer.learning_rate=0.001", "schedule=constant", f"trainer.epochs={epochs}",
         "trainer.batch_size=128", f"trainer.seed={seed}", "trainer.jit_compile=false",
         "trainer.precision=float32", "trainer.verbose=0", f"tracking.run_name=bench-{seed}"],
        {**ENV, "KERASCNN_RUNS_DIR": str(runs), "MLFLOW_TRACKING_URI": store})
    client = mlflow.MlflowClient(store)
    run = client.search_runs([client.get_experiment_by_name("kerascnn").experiment_id],
                             filter_string=f"attributes.run_name = 'bench-{seed}'")[0]
    history = client.get_metric_history(run.info.run_id, "train_images_per_sec")
    return elapsed, [m.value for m in sorted(history, key=lambda m: m.step)]


def steady(per_epoch: list[float]) -> tuple[float, float]:
    """Images per second over the epochs after the first (total images / total time: on a
    machine where epochs alternate between two speeds a median picks one of them), and the
    spread (max - min) / median of those epochs."""
    after_first = per_epoch[1:]
    rate = statistics.harmonic_mean(after_first)
    return rate, (max(after_first) - min(after_first)) / statistics.median(after_first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-images", type=int, default=8000)
    parser.add_argument("--test-images", type=int, default=2000)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data, runs = Path(tmp) / "data", Path(tmp) / "runs"
        data.mkdir()
        runs.mkdir()
        write_idx(data, args.train_images, args.test_images)
        app(data, runs, 1, seed=1000)  # creates the store: not part of the comparison
        for round_ in range(args.rounds):
            order = ("plain", "app") if round_ % 2 == 0 else ("app", "plain")
            figures = {}
            for name in order:
                figures[name] = (plain(data, args.epochs, round_) if name == "plain"
                                 else app(data, runs, args.epochs, round_))
            (p_wall, p_epochs), (a_wall, a_epochs) = figures["plain"], figures["app"]
            (p_rate, p_spread), (a_rate, a_spread) = steady(p_epochs), steady(a_epochs)
            rows.append((p_wall, a_wall, a_wall / p_wall, p_rate, a_rate, a_rate / p_rate,
                         p_spread, a_spread))
            print(f"round {round_ + 1} ({' then '.join(order)}): wall plain {p_wall:.1f} s, "
                  f"app {a_wall:.1f} s; steady plain {p_rate:,.0f} img/s, app {a_rate:,.0f} "
                  f"img/s\n  plain epochs: {', '.join(f'{v:,.0f}' for v in p_epochs)}\n"
                  f"  app epochs:   {', '.join(f'{v:,.0f}' for v in a_epochs)}", flush=True)

    print(f"\nLeNet-5, {args.train_images:,} + {args.test_images:,} 28x28 images, "
          f"{args.epochs} epochs, batch 128, Adam, float32, no XLA, {args.rounds} rounds")
    head = ("round", "plain s", "app s", "wall x", "plain img/s", "app img/s", "steady x",
            "plain spread", "app spread")
    print(" ".join(f"{h:>12}" for h in head))
    for i, row in enumerate(rows, 1):
        print(f"{i:>12} {row[0]:>12.1f} {row[1]:>12.1f} {row[2]:>12.3f} {row[3]:>12,.0f} "
              f"{row[4]:>12,.0f} {row[5]:>12.3f} {row[6]:>12.1%} {row[7]:>12.1%}")
    median = [statistics.median(col) for col in zip(*rows, strict=True)]
    print(f"{'median':>12} {median[0]:>12.1f} {median[1]:>12.1f} {median[2]:>12.3f} "
          f"{median[3]:>12,.0f} {median[4]:>12,.0f} {median[5]:>12.3f} {median[6]:>12.1%} "
          f"{median[7]:>12.1%}")
    print("targets: wall x <= 1.25 (aim 1.15), steady x >= 0.97, app spread <= 10%")


if __name__ == "__main__":
    main()
