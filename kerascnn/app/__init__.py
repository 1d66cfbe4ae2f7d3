"""The training app: Hydra configuration in, library calls out, every run recorded in MLflow.

The library (:mod:`kerascnn.layers`, :mod:`kerascnn.models`, :mod:`kerascnn.data`) speaks in
Python arguments; this package is the only place that knows config keys. Its modules import
TensorFlow, Keras and MLflow only where they do work, so ``--help`` stays fast.
"""
