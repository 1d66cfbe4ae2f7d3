"""kerascnn as people install it: a wheel in a fresh virtual environment, run from an empty
folder, with the user's own configs joining through Hydra's search path.

The wheel is built from this checkout and installed without its dependencies into a new
virtual environment whose ``.pth`` file points at the project's installed dependencies, so
nothing is downloaded twice; the checkout itself is never on that environment's path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import mlflow
import pytest

from kerascnn.app.tracking.wheel import build_lock, one_build_at_a_time, package_wheel
from tests.helpers.runs import REPO, TINY

# The shared tiny run, without the system-metrics sampler.
TINY_RUN = [*TINY, "tracking.system_metrics=false"]


def _run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    return package_wheel(out)  # this checkout's wheel, as a logged model carries it


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment holding only the wheel, plus a path to the dependencies."""
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(root)])
    python = root / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
                .stdout.strip())
    (site / "project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
          "--no-deps", str(wheel)])
    return root


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KERASCNN_RUNS_DIR", "MLFLOW_TRACKING_URI", "PYTHONPATH")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def test_wheel_ships_the_configs(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "kerascnn/conf/config.yaml" in names
    shipped = {n.removeprefix("kerascnn/conf/") for n in names if n.startswith("kerascnn/conf/")}
    in_repo = {str(p.relative_to(REPO / "conf")) for p in (REPO / "conf").rglob("*.yaml")}
    assert in_repo and in_repo <= shipped
    assert {"kerascnn/app/train.py", "kerascnn/layers/__init__.py",
            "kerascnn/models/registry.py", "kerascnn/data/pipeline.py"} <= set(names)


def test_builds_of_one_checkout_take_turns(tmp_path):
    """While one build holds a folder's lock, another process cannot take it."""
    take = ("import fcntl, sys; f = open(sys.argv[1], 'a')\n"
            "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
            "except BlockingIOError:\n    sys.exit(3)")
    lock = build_lock(tmp_path)
    with one_build_at_a_time(tmp_path):
        assert subprocess.run([sys.executable, "-c", take, str(lock)]).returncode == 3
    assert subprocess.run([sys.executable, "-c", take, str(lock)]).returncode == 0


@pytest.mark.slow
def test_installed_train_runs_the_users_own_model_from_their_folder(venv, tmp_path):
    """The wheel's ``kerascnn-train`` in a folder holding only the user's files (no checkout):
    their model joins through Hydra's search path, and the runs go to ``./runs``."""
    work = tmp_path / "project"
    (work / "myconf" / "model").mkdir(parents=True)
    (work / "mymodels.py").write_text(textwrap.dedent("""
        import keras

        def tiny(name, input_shape, num_classes, downsample=None, width=4):
            inputs = keras.Input(input_shape)
            x = keras.layers.Conv2D(width, 3, activation="relu")(inputs)
            x = keras.layers.GlobalAveragePooling2D()(x)
            outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
            return keras.Model(inputs, outputs, name=name)
    """))
    (work / "myconf" / "model" / "tiny.yaml").write_text(
        "_target_: mymodels.tiny\nname: tiny\nwidth: 3\n")
    result = _run([str(venv / "bin" / "kerascnn-train"), *TINY_RUN, "model=tiny",
                   f"hydra.searchpath=[file://{work / 'myconf'}]", "data.image_size=12"],
                  cwd=work, env=_env(PYTHONPATH=str(work)))
    assert "tiny-default-digits" in result.stdout and "test accuracy" in result.stdout
    store = work / "runs" / "mlflow.db"
    assert store.is_file(), sorted(p.name for p in work.rglob("*"))
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("kerascnn").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "tiny"
    # Conv2D(3 filters, 3x3, 1 channel) + Dense(3 -> 10): the user's width reached the builder.
    assert int(run.data.params["model.num_params"]) == (9 * 3 + 3) + (3 * 10 + 10)
    # The package imported was the wheel's, not this checkout.
    where = _run([str(venv / "bin" / "python"), "-c",
                  "import kerascnn.app.train as t; print(t.__file__)"], cwd=work, env=_env())
    assert str(venv) in where.stdout and str(REPO) not in where.stdout


def test_help_imports_no_framework(venv, tmp_path):
    """``--help`` lists the groups without importing TensorFlow, Keras or MLflow."""
    probe = textwrap.dedent("""
        import sys
        sys.argv = ["kerascnn-train", "--help"]
        from kerascnn.train import main
        try:
            main()
        except SystemExit:
            pass
        heavy = [m for m in ("tensorflow", "keras", "mlflow", "jax", "torch") if m in sys.modules]
        print("HEAVY", heavy)
    """)
    result = _run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=_env())
    assert "== Configuration groups ==" in result.stdout
    assert "downsample: " in result.stdout and "model: " in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout[-500:]
