"""Models with p-norm pooling exported to a SavedModel, converted to TFLite and run there.

A learned p used to be computed under a data-dependent conditional, which the converter
turned into an IF op that TFLite's default delegate (XNNPack) cannot prepare. The layers now
have no such control flow: the converted model runs under the default delegates and agrees
with Keras.
"""

import io
import re
from contextlib import redirect_stdout

import keras
import numpy as np
import pytest

from kerascnn.layers import GlobalPNormPooling2D, PNormPooling1D, PNormPooling2D

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow", reason="SavedModel export needs TensorFlow"
    ),
]


def _learned_p_model():
    """Learned p on every path: tiled windows, gathered ("same", overlapping), global."""
    inputs = keras.Input((12, 12, 3))
    x = PNormPooling2D(2, p=3, trainable_p=True, name="blocks")(inputs)
    x = PNormPooling2D(3, 2, "same", p=2.5, trainable_p=True, name="patches")(x)
    x = GlobalPNormPooling2D(p=3, trainable_p=True, name="global")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    shifts = np.array([0.4, -0.3, 0.2], "float32")
    for name in ("blocks", "patches", "global"):
        layer = model.get_layer(name)
        layer.rho.assign(keras.ops.convert_to_numpy(layer.rho) + shifts)
    return model


def _fixed_p_1d_model():
    inputs = keras.Input((16, 4))
    x = PNormPooling1D(3, 2, "same", p=3)(inputs)
    x = PNormPooling1D(2, p=8)(x)
    return keras.Model(inputs, keras.layers.Flatten()(x))


def _run_tflite(tf, content, x):
    interpreter = tf.lite.Interpreter(model_content=content)  # default delegates
    (source,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(source["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], x)
    interpreter.invoke()
    (target,) = interpreter.get_output_details()
    return interpreter.get_tensor(target["index"])


@pytest.mark.parametrize("make_model", [_learned_p_model, _fixed_p_1d_model])
def test_saved_model_to_tflite_runs_and_agrees_with_keras(make_model, tmp_path):
    tf = pytest.importorskip("tensorflow")
    model = make_model()
    x = np.random.default_rng(0).standard_normal((2, *model.input_shape[1:])).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x))
    path = str(tmp_path / "saved_model")
    model.export(path, format="tf_saved_model", verbose=False)
    content = tf.lite.TFLiteConverter.from_saved_model(path).convert()

    report = io.StringIO()
    with redirect_stdout(report):
        tf.lite.experimental.Analyzer.analyze(model_content=content)
    ops = re.findall(r"Op#\d+ (\w+)\(", report.getvalue())
    assert ops, report.getvalue()
    assert not {"IF", "WHILE"} & set(ops), sorted(set(ops))

    np.testing.assert_allclose(_run_tflite(tf, content, x), expected, rtol=1e-4, atol=1e-4)
