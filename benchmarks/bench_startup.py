"""Start-up time of the command-line entry points against importing TensorFlow.

`python -m kerascnn.train --help` and `--cfg job` must not import TensorFlow, Keras or MLflow:
target at most half the time of `python -c "import tensorflow"`. The commands run as fresh
processes in alternating rounds, so both see the same machine load; the table gives the median
wall and CPU seconds and each command's ratio to the TensorFlow import.

``--ml-dtypes 0.7.0 0.6.0`` adds ``import tensorflow`` with each of those ml_dtypes versions
(installed from the package index into a folder under the system's temporary directory and put
first on the path): the package bounds ml_dtypes below 0.7 because 0.7.0 alone takes about
half a second to import, which every process that imports TensorFlow pays.

    python benchmarks/bench_startup.py [--rounds 7] [--ml-dtypes 0.7.0 0.6.0]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "import tensorflow": [sys.executable, "-c", "import tensorflow"],
    "kerascnn.train --help": [sys.executable, "-m", "kerascnn.train", "--help"],
    "kerascnn.train --cfg job": [sys.executable, "-m", "kerascnn.train", "--cfg", "job"],
    "kerascnn.compare --help": [sys.executable, "-m", "kerascnn.compare", "--help"],
}
BASELINE = "import tensorflow"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(command: list[str], path: str | None) -> tuple[float, float]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [path, env.get("PYTHONPATH")]))
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start, _children_cpu() - cpu


def _ml_dtypes(version: str) -> str:
    folder = Path(tempfile.gettempdir()) / f"kerascnn-bench-ml-dtypes-{version}"
    if not (folder / "ml_dtypes").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(folder), f"ml-dtypes=={version}"], check=True)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ml-dtypes", nargs="*", default=[], metavar="VERSION")
    args = parser.parse_args()
    commands = {name: (command, None) for name, command in COMMANDS.items()}
    for version in args.ml_dtypes:
        commands[f"{BASELINE} (ml_dtypes {version})"] = (COMMANDS[BASELINE], _ml_dtypes(version))
    for command, path in commands.values():  # warm the file cache once
        _time(command, path)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, (command, path) in commands.items():
            times[name].append(_time(command, path))
    base = statistics.median(wall for wall, _ in times[BASELINE])
    print(f"{'command':40} {'median s':>9} {'CPU s':>7} {'vs import tensorflow':>21}")
    for name, values in times.items():
        median = statistics.median(wall for wall, _ in values)
        cpu = statistics.median(cpu for _, cpu in values)
        print(f"{name:40} {median:9.2f} {cpu:7.2f} {median / base:20.2f}x")
    print(f"n = {args.rounds} rounds; target: --help and --cfg job <= 0.50x import tensorflow")


if __name__ == "__main__":
    main()
