"""A logged model served and loaded with MLflow's own tools, by processes that never import
kerascnn themselves: the model must bring its layers in (its ``pyfunc`` loader), and its own
wheel for an environment built from the model alone.

The model is built directly (LeNet-5 with learned-p pooling: a registered architecture and a
custom layer with a weight of its own) and logged with the function the training uses. The
reference is the same model called in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from tests.helpers.logged_model import log_lenet
from tests.helpers.servers import mlflow_command
from tests.helpers.system import HOST, answers, free_port, stop_group, tail, wait_for

pytestmark = pytest.mark.slow  # every test starts MLflow (and TensorFlow) in a new process

REGISTERED = "digits-lenet"
# What a process that has not imported kerascnn holds: asserted inside each script.
NO_KERASCNN = ("assert not [m for m in sys.modules if m.split('.')[0] == 'kerascnn'], "
               "'kerascnn was imported before the model'")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    images = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    logged = log_lenet(root, "pnorm_learned", images[:2], registered_model_name=REGISTERED)
    (root / "images.json").write_text(json.dumps({"inputs": images.tolist()}))
    np.save(root / "images.npy", images)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERASCNN_RUNS_DIR")}
    # As in an activated environment: `mlflow models serve` starts the `uvicorn` on the PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(MLFLOW_TRACKING_URI=logged.uri, TF_CPP_MIN_LOG_LEVEL="2",
               MLFLOW_DISABLE_TELEMETRY="true")
    logged.root, logged.env, logged.images = root, env, images
    logged.expected = keras.ops.convert_to_numpy(logged.model(images, training=False))
    yield logged
    mlflow.set_tracking_uri(None)


def _run(cmd, logged, timeout=600):
    done = subprocess.run(cmd, cwd=logged.root, env=logged.env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{cmd}\n{tail(done.stdout)}\n{tail(done.stderr)}"
    return done


def test_the_model_carries_its_wheel_its_example_and_its_loader(logged):
    folder = Path(mlflow.artifacts.download_artifacts(logged.info.model_uri))
    requirements = (folder / "requirements.txt").read_text().split()
    (wheel,) = [r for r in requirements if r.endswith(".whl")]
    assert wheel.startswith("wheels/kerascnn-") and (folder / wheel).is_file()
    assert {r.split("==")[0] for r in requirements} >= {"mlflow", "keras", "tensorflow"}
    with zipfile.ZipFile(folder / wheel) as archive:
        names = set(archive.namelist())
        assert archive.testzip() is None
    assert {"kerascnn/layers/pnorm_pooling2d.py", "kerascnn/app/tracking/model.py",
            "kerascnn/conf/config.yaml"} <= names
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)
    example = json.loads((folder / "input_example.json").read_text())
    np.testing.assert_allclose(np.asarray(example, dtype=np.float32), logged.images[:2],
                               rtol=1e-6)
    conf = mlflow.models.Model.load(folder)
    assert conf.flavors["python_function"]["loader_module"] == "kerascnn.app.tracking.model"
    assert "keras" in conf.flavors
    version = mlflow.MlflowClient(logged.uri).get_model_version(REGISTERED, "1")
    assert version.run_id == logged.run_id


def test_pyfunc_loads_in_a_process_that_never_imported_kerascnn(logged):
    script = ("import json, sys, numpy as np, mlflow\n"
              f"{NO_KERASCNN}\n"
              "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
              "print(json.dumps(model.predict(np.load(sys.argv[2])).tolist()))\n")
    done = _run([sys.executable, "-c", script, f"models:/{REGISTERED}/1",
                 str(logged.root / "images.npy")], logged)
    got = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(got, logged.expected, rtol=1e-5, atol=1e-6)


def test_import_kerascnn_is_enough_for_keras_and_the_keras_flavour(logged):
    path = logged.root / "plain.keras"
    logged.model.save(path)
    script = ("import json, sys, numpy as np, keras, mlflow\n"
              f"{NO_KERASCNN}\n"
              "import kerascnn\n"
              "x = np.load(sys.argv[3])\n"
              "a = keras.saving.load_model(sys.argv[1]).predict(x, verbose=0)\n"
              "b = mlflow.keras.load_model(sys.argv[2]).predict(x, verbose=0)\n"
              "print(json.dumps([a.tolist(), b.tolist()]))\n")
    done = _run([sys.executable, "-c", script, str(path), logged.model_uri,
                 str(logged.root / "images.npy")], logged)
    plain, flavour = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(plain, logged.expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flavour, logged.expected, rtol=1e-5, atol=1e-6)


def _serve_and_ask(logged, model: str, env_manager: str, timeout: float) -> np.ndarray:
    """``mlflow models serve -m MODEL --env-manager ...``: the probabilities ``/invocations``
    answers for the images, posted as a client would."""
    port = free_port()
    log = logged.root / f"serve-{env_manager}.log"
    cmd = [*mlflow_command(), "models", "serve", "-m", model, "--env-manager", env_manager,
           "--host", HOST, "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=logged.root, env=logged.env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    url = f"http://{HOST}:{port}"
    try:
        wait_for(lambda: answers(f"{url}/ping"), timeout, f"mlflow models serve ({env_manager})",
                 proc=proc, log=log)
        request = urllib.request.Request(f"{url}/invocations",
                                         data=(logged.root / "images.json").read_bytes(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            return np.asarray(json.loads(answer.read())["predictions"])
    finally:
        stop_group(proc)


def test_mlflow_models_serve_answers_invocations(logged):
    got = _serve_and_ask(logged, logged.model_uri, "local", timeout=300)
    np.testing.assert_allclose(got, logged.expected, rtol=1e-5, atol=1e-6)


def test_mlflow_models_predict(logged):
    out = logged.root / "predicted.json"
    _run([*mlflow_command(), "models", "predict", "-m", logged.model_uri, "--env-manager",
          "local", "-i", str(logged.root / "images.json"), "-t", "json", "-o", str(out)], logged)
    got = np.asarray(json.loads(out.read_text())["predictions"])
    np.testing.assert_allclose(got, logged.expected, rtol=1e-5, atol=1e-6)


def _index_reachable() -> str | None:
    """Why the package index cannot be reached, or None when it can."""
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    try:
        with urllib.request.urlopen(f"{index}/keras/", timeout=10):
            return None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return f"the package index {index} is unreachable ({exc})"


def test_virtualenv_env_manager_builds_from_the_model_alone(logged, tmp_path):
    """``mlflow models serve --env-manager virtualenv``: a new environment (Python from pyenv)
    from the model's requirements, its kerascnn from the wheel inside the model (no index
    holds it), the rest from the package index."""
    reason = _index_reachable()
    if reason:
        pytest.skip(reason)
    folder = mlflow.artifacts.download_artifacts(logged.info.model_uri,
                                                 dst_path=str(tmp_path / "model"))
    env_root = tmp_path / "envs"  # a fresh environment, not one MLflow built before
    logged.env["MLFLOW_ENV_ROOT"] = str(env_root)
    try:
        got = _serve_and_ask(logged, folder, "virtualenv", timeout=1500)
    finally:
        logged.env.pop("MLFLOW_ENV_ROOT")
    np.testing.assert_allclose(got, logged.expected, rtol=1e-5, atol=1e-6)
    (python,) = env_root.glob("*/bin/python")
    where = subprocess.run([str(python), "-c", "import kerascnn; print(kerascnn.__file__)"],
                           capture_output=True, text=True, env=logged.env, cwd=tmp_path)
    assert str(python.parents[1]) in where.stdout, where.stderr  # the wheel's, not the repo's
