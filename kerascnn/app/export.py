"""``python -m kerascnn.export MODEL --format savedmodel|tflite|onnx --output PATH``.

A logged model (``runs:/<id>/model``, ``models:/<name>/<version>``, a downloaded MLflow model's
folder) or a ``.keras`` file, exported with Keras' own ``model.export`` to where models run:

- ``savedmodel``: a TensorFlow SavedModel folder (``tf.saved_model.load(PATH).serve(x)``,
  TensorFlow Serving);
- ``tflite``: a LiteRT (TensorFlow Lite) flat buffer, ``PATH`` ending in ``.tflite``;
- ``onnx``: an ONNX file, converted by tf2onnx (the ``onnx`` extra:
  ``pip install "kerascnn[onnx]"``).

The export is run in its own runtime (``tf.saved_model``, ``tf.lite.Interpreter`` under its
default delegates, ``onnxruntime``) on the model's input example before it is put at ``PATH``,
and must agree with Keras within :data:`TOLERANCE`; one that does not run, or does not agree,
is refused and nothing is left at ``PATH``. Settings are checked before TensorFlow is imported.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

FORMATS = {"savedmodel": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}
RUNTIMES = {"savedmodel": "tf.saved_model", "tflite": "tf.lite.Interpreter",
            "onnx": "onnxruntime"}
ONNX_EXTRA = ("tf2onnx", "onnx", "onnxruntime")
TOLERANCE = 1e-4
_URI = re.compile(r"^[A-Za-z][\w+.-]*:/")  # runs:/..., models:/..., s3://..., file:///...


class ExportError(Exception):
    """A refusal or failure, said in one line."""


def check_settings(model: str, fmt: str, output: Path) -> None:
    """Refuse bad settings before any work, naming the setting and the value."""
    if fmt == "onnx":
        missing = [m for m in ONNX_EXTRA if importlib.util.find_spec(m) is None]
        if missing:
            raise ExportError(f"--format onnx needs the onnx extra ({', '.join(missing)} "
                              'missing): pip install "kerascnn[onnx]"')
    if fmt == "tflite" and output.suffix != ".tflite":
        raise ExportError(f"--output {output}: a TFLite model's file name ends in .tflite")
    if output.exists():
        raise ExportError(f"--output {output} already exists; give a new path")
    if not output.parent.is_dir():
        raise ExportError(f"--output {output}: the folder {output.parent} does not exist")
    if not os.access(output.parent, os.W_OK):
        raise ExportError(f"--output {output}: the folder {output.parent} is not writable")
    if not _URI.match(model) and not Path(model).exists():
        raise ExportError(f"model {model}: no such file or folder (or give an MLflow model "
                          "URI: runs:/<run id>/model, models:/<name>/<version>)")


def load(model: str, tracking_uri: str):
    """The Keras model and example inputs (the logged input example where there is one)."""
    import keras
    import numpy as np

    import kerascnn.models  # noqa: F401  (registers the layers before Keras deserialises)

    if model.endswith(".keras") and Path(model).is_file():
        loaded, example = keras.saving.load_model(model), None
    else:
        import mlflow
        from mlflow.exceptions import MlflowException

        mlflow.set_tracking_uri(tracking_uri)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                folder = mlflow.artifacts.download_artifacts(model, dst_path=tmp)
                loaded = mlflow.keras.load_model(folder)
                example = mlflow.models.Model.load(folder).load_input_example(folder)
        except (MlflowException, OSError, KeyError) as exc:
            raise ExportError(f"model {model}: {_first_line(exc)}") from None
    if example is None:
        shape = [2 if d is None else d for d in loaded.inputs[0].shape]
        example = np.random.default_rng(0).random(shape, dtype=np.float32)
    return loaded, np.asarray(example, dtype=loaded.inputs[0].dtype)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def run_export(fmt: str, path: Path, x):
    """The exported model's outputs for ``x``, computed by the format's own runtime."""
    import numpy as np

    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # held: its variables live as long as it does
        return np.asarray(loaded.serve(x))
    if fmt == "tflite":
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter's notice of LiteRT's own package
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_path=str(path))
        (given,) = interpreter.get_input_details()
        interpreter.resize_tensor_input(given["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(given["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def export(model, fmt: str, output: Path, x) -> float:
    """Export, check in the runtime, then move into ``output``; the largest difference."""
    import numpy as np

    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        target = work / output.name
        # Called first: the ONNX exporter refuses a loaded model that was never called.
        expected = np.asarray(model(x, training=False))
        try:
            with _quiet_stdout(), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # the converters' NumPy notices
                model.export(str(target), format=FORMATS[fmt], verbose=False)
        except Exception as exc:
            raise ExportError(f"Keras cannot export this model as {fmt}: "
                              f"{_first_line(exc)}") from None
        try:
            got = run_export(fmt, target, x)
        except Exception as exc:
            raise ExportError(f"the {fmt} export does not run under {RUNTIMES[fmt]}: "
                              f"{_first_line(exc)}") from None
        difference = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - expected)))
        if not difference <= TOLERANCE:
            raise ExportError(f"the {fmt} export differs from Keras by {difference:.3g} "
                              f"(more than {TOLERANCE:g}) under {RUNTIMES[fmt]}")
        os.replace(target, output)
        return difference
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _quiet_stdout:
    """Converters (tf2onnx, the TFLite converter) print progress; keep the terminal ours."""

    def __enter__(self):
        sys.stdout.flush()
        self._saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def __exit__(self, *exc):
        sys.stdout.flush()
        os.dup2(self._saved, 1)
        os.close(self._saved)


def main(argv: list[str] | None = None) -> int:
    from kerascnn.app.quiet import quiet_startup
    from kerascnn.app.tracking.store import resolve_tracking_uri

    quiet_startup()
    parser = argparse.ArgumentParser(
        prog="kerascnn.export",
        description="Export a logged model (or a .keras file) to SavedModel, TFLite or ONNX, "
                    "checked in the format's own runtime against Keras.")
    parser.add_argument("model", help="runs:/<run id>/model, models:/<name>/<version>, an "
                                      "MLflow model's folder, or a .keras file")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS))
    parser.add_argument("--output", required=True, type=Path,
                        help="the SavedModel folder, or the .tflite / .onnx file to write")
    parser.add_argument("--tracking-uri", default=None,
                        help="the MLflow store (default: MLFLOW_TRACKING_URI, else the runs "
                             "folder's mlflow.db)")
    args = parser.parse_args(argv)
    output = args.output.expanduser().absolute()
    try:
        check_settings(args.model, args.format, output)
        model, x = load(args.model, resolve_tracking_uri(args.tracking_uri))
        difference = export(model, args.format, output, x)
    except ExportError as exc:
        print(f"kerascnn.export: {exc}", file=sys.stderr)
        return 2
    print(f"Exported {args.model} as {args.format} to {output}")
    print(f"Checked under {RUNTIMES[args.format]} on {len(x)} example images: "
          f"largest difference to Keras {difference:.2g}")
    return 0
