"""The trained model as an MLflow model (``mlflow.keras``), loadable after ``import kerascnn``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import keras
import mlflow.keras
from mlflow.models import infer_signature


def _requirement(package: str) -> str | None:
    try:
        return f"{package}=={version(package)}"
    except PackageNotFoundError:
        return None


def log_keras_model(model, example_images, name: str = "model",
                    registered_model_name: str | None = None):
    """Log ``model`` in the ``.keras`` format with its signature and pinned requirements;
    with ``registered_model_name``, also as a new version of that Model Registry model.

    Giving the requirements skips MLflow's inference of them, which loads the model again in
    a subprocess: seconds per run that a sweep would pay for nothing.
    """
    requirements = [r for r in map(_requirement, ("kerascnn", "keras", "tensorflow")) if r]
    # A direct call: `predict` would trace yet another function for a batch of this size.
    outputs = keras.ops.convert_to_numpy(model(example_images, training=False))
    signature = infer_signature(example_images, outputs)
    return mlflow.keras.log_model(model, name=name, signature=signature,
                                  pip_requirements=requirements,
                                  registered_model_name=registered_model_name)
