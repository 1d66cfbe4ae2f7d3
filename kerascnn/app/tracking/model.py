"""The trained model as an MLflow model that serves with MLflow's own tools and no user code.

MLflow's Keras flavour saves the ``.keras`` file, and Keras finds a custom layer in it only
once the layer's module is imported (Keras imports a saved class's module by itself only for
its own packages). So the model's ``python_function`` flavour names this module as its loader
(``mlflow.pyfunc.add_to_model(loader_module=...)``, MLflow's documented way for a flavour to say
how its files load): :func:`_load_pyfunc` imports kerascnn, then loads the Keras flavour. With
that, ``mlflow models serve``/``predict`` and ``mlflow.pyfunc.load_model`` work in any
environment where kerascnn is installed; ``mlflow.keras.load_model`` after ``import kerascnn``.

The model carries what a fresh environment needs: an input example, and the kerascnn wheel it
was trained with in ``wheels/`` (the folder MLflow's ``add_libraries_to_model`` uses), which
``requirements.txt`` names beside pinned Keras and TensorFlow, so ``mlflow models serve
--env-manager virtualenv`` (or ``uv``) builds the environment from the model alone.
``add_libraries_to_model`` itself is not used: it downloads every dependency's wheel
(TensorFlow included) into each model, and works only on registered models.
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import keras
import mlflow.keras
import numpy as np
from mlflow import pyfunc
from mlflow.models import Model, infer_signature

from kerascnn.app.tracking.wheel import package_wheel

WHEELS = "wheels"


def _requirement(package: str) -> str | None:
    try:
        return f"{package}=={version(package)}"
    except PackageNotFoundError:
        return None


def log_keras_model(model, example_images, name: str = "model",
                    registered_model_name: str | None = None):
    """Log ``model`` in the ``.keras`` format with its signature, an input example, pinned
    requirements and the kerascnn wheel; with ``registered_model_name``, also as a new version
    of that Model Registry model. Returns MLflow's ``ModelInfo``.

    Giving the requirements skips MLflow's inference of them, which loads the model again in
    a subprocess: seconds per run that a sweep would pay for nothing.
    """
    # A direct call: `predict` would trace yet another function for a batch of this size.
    outputs = keras.ops.convert_to_numpy(model(example_images, training=False))
    signature = infer_signature(example_images, outputs)
    return Model.log(artifact_path=None, name=name, flavor=sys.modules[__name__],
                     flavor_name="mlflow.keras", registered_model_name=registered_model_name,
                     keras_model=model, signature=signature,
                     input_example=np.asarray(example_images))


def save_model(keras_model, path, mlflow_model=None, signature=None, input_example=None,
               **kwargs):
    """MLflow's Keras flavour, plus the wheel and this module as the ``pyfunc`` loader.

    Called by ``mlflow.models.Model.log`` (this module is the flavour it is given).
    """
    wheel = _wheel()
    requirements = [r for r in map(_requirement, ("keras", "tensorflow")) if r]
    mlflow_model = mlflow_model if mlflow_model is not None else Model()
    # The Keras flavour writes the input example before it creates the model's folder.
    Path(path).mkdir(parents=True, exist_ok=True)
    mlflow.keras.save_model(keras_model, path, mlflow_model=mlflow_model, signature=signature,
                            input_example=input_example,
                            pip_requirements=[*requirements, f"{WHEELS}/{wheel.name}"])
    (Path(path) / WHEELS).mkdir()
    shutil.copy2(wheel, Path(path) / WHEELS / wheel.name)
    env = mlflow_model.flavors[pyfunc.FLAVOR_NAME].get(pyfunc.ENV, {})
    pyfunc.add_to_model(mlflow_model, loader_module=__name__, conda_env=env.get("conda"),
                        python_env=env.get("virtualenv"))
    mlflow_model.save(str(Path(path) / "MLmodel"))


@functools.cache
def _wheel() -> Path:
    """The installed kerascnn as a wheel, made once per process."""
    return package_wheel(Path(tempfile.mkdtemp(prefix="kerascnn-wheel-")))


class KerasPredictor:
    """The ``pyfunc`` face of a Keras classifier: images in, class probabilities out."""

    def __init__(self, model):
        self.model = model

    def get_raw_model(self):
        """The Keras model (``mlflow.pyfunc.PyFuncModel.get_raw_model``)."""
        return self.model

    def predict(self, data, params=None):
        if hasattr(data, "to_numpy"):  # a DataFrame (a model without a tensor signature)
            data = data.to_numpy()
        return np.asarray(self.model.predict(np.asarray(data), verbose=0))


def _load_pyfunc(path):
    """Load the model for ``mlflow.pyfunc`` (MLflow calls this with the model's folder)."""
    import kerascnn.models  # noqa: F401  (registers the layers with Keras before it loads)

    return KerasPredictor(mlflow.keras.load_model(path))
