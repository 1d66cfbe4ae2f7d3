"""Wall time of a 4-job sweep, sequential against 2 jobs at a time, as real command lines.

The sweep trains LeNet-5 on the embedded digits for 10 epochs with 4 seeds:

    python -m kerascnn.train -m trainer.seed=0,1,2,3 trainer.epochs=10 tracking.plots=false \\
        hydra/launcher=basic                                    # sequential
        hydra/launcher=joblib hydra.launcher.n_jobs=2           # 2 at a time, threads=auto
        hydra/launcher=joblib hydra.launcher.n_jobs=2 trainer.threads=<cores>   # (--oversubscribed)

With ``trainer.threads=auto`` each joblib job sizes TensorFlow's pools (and its tf.data pool)
to cores / n_jobs; the optional third variant gives every job pools for the whole machine, as
before. Variants alternate within each round (order rotated every round) so that drift in the
machine's load hits all of them; the table gives the median wall time of each and its speed-up
over the sequential sweep (sequential time / variant time). Every sweep writes into its own
temporary runs folder, with a copy of a store whose schema was created beforehand (as a user's
store is after the first run).

    .venv/bin/python benchmarks/bench_parallel_sweep.py [--rounds 2] [--oversubscribed]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def sweep(extra: list[str], epochs: int, seeds: int, store: Path) -> float:
    """Runs one sweep in a fresh runs folder holding a copy of `store`; returns its wall time."""
    with tempfile.TemporaryDirectory() as runs:
        shutil.copy(store, Path(runs) / "mlflow.db")
        env = {**os.environ, "KERASCNN_RUNS_DIR": runs, "TF_CPP_MIN_LOG_LEVEL": "2",
               "MLFLOW_TRACKING_URI": f"sqlite:///{runs}/mlflow.db",
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        args = [sys.executable, "-m", "kerascnn.train", "-m",
                "trainer.seed=" + ",".join(str(s) for s in range(seeds)),
                f"trainer.epochs={epochs}", "tracking.plots=false", "trainer.verbose=0", *extra]
        start = time.perf_counter()
        result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"sweep failed ({' '.join(extra)}):\n{result.stderr[-3000:]}")
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--oversubscribed", action="store_true",
                        help="also time the joblib sweep with pools sized for the whole machine")
    args = parser.parse_args()

    joblib = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"]
    variants = {"sequential (basic)": ["hydra/launcher=basic"],
                f"joblib n_jobs={args.jobs}, threads=auto": joblib}
    if args.oversubscribed:
        variants[f"joblib n_jobs={args.jobs}, threads={cores()}"] = [
            *joblib, f"trainer.threads={cores()}"]
    with tempfile.TemporaryDirectory() as empty:  # the store's schema, created once
        store = Path(empty) / "mlflow.db"
        import mlflow

        mlflow.MlflowClient(f"sqlite:///{store}").search_experiments()
        run_rounds(args, variants, store)


def run_rounds(args: argparse.Namespace, variants: dict[str, list[str]], store: Path) -> None:
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            times[name].append(sweep(variants[name], args.epochs, args.seeds, store))
            print(f"round {round_ + 1}: {name:<32} {times[name][-1]:7.1f} s", flush=True)

    base = statistics.median(times[names[0]])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{args.seeds}-job sweep, LeNet-5 on digits, {args.epochs} epochs, {cores()} cores, "
          f"{args.rounds} alternating rounds (load average at the end {load:.1f})")
    print(f"{'variant':<34} {'wall s (per round)':<24} {'median':>8} {'speed-up':>9}")
    for name in names:
        per_round = ", ".join(f"{t:.1f}" for t in times[name])
        median = statistics.median(times[name])
        print(f"{name:<34} {per_round:<24} {median:>8.1f} {base / median:>8.2f}x")
    print("target: joblib n_jobs=2, threads=auto >= 1.4x the sequential sweep on 2 cores")


if __name__ == "__main__":
    main()
