"""Start-up time of the command-line entry points against importing TensorFlow.

`python -m kerascnn.train --help` and `--cfg job` must not import TensorFlow, Keras or MLflow:
target at most half the time of `python -c "import tensorflow"`. The commands run as fresh
processes in alternating rounds, so both see the same machine load; the table gives medians
and each command's ratio to the TensorFlow import.

    python benchmarks/bench_startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import tensorflow": [sys.executable, "-c", "import tensorflow"],
    "kerascnn.train --help": [sys.executable, "-m", "kerascnn.train", "--help"],
    "kerascnn.train --cfg job": [sys.executable, "-m", "kerascnn.train", "--cfg", "job"],
    "kerascnn.compare --help": [sys.executable, "-m", "kerascnn.compare", "--help"],
}
BASELINE = "import tensorflow"


def _time(command: list[str]) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the file cache once
        _time(command)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            times[name].append(_time(command))
    base = statistics.median(times[BASELINE])
    print(f"{'command':28} {'median s':>9} {'min s':>7} {'vs import tensorflow':>21}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:28} {median:9.2f} {min(values):7.2f} {median / base:20.2f}x")
    print("target: --help and --cfg job <= 0.50x import tensorflow")


if __name__ == "__main__":
    main()
