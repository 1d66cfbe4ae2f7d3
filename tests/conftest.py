"""Suite-wide test set-up: quiet TensorFlow, a fresh Keras session and fixed seeds per test."""

import os
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_session(request):
    """Keras' session cleared and every seed fixed, a module's own generator (``RNG``) too:
    started again for each test, from the test's id, so that what a test draws does not depend
    on which tests ran before it in its process (pytest-xdist hands them out in varying order)."""
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    module = getattr(request, "module", None)
    if isinstance(getattr(module, "RNG", None), np.random.Generator):
        module.RNG = np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
    yield
    keras.config.set_dtype_policy("float32")
