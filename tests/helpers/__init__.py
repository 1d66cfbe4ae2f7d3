"""Helpers shared by the tests, each written once; fixtures stay in the conftest.py files.

Numbers and layers:

- :mod:`tests.helpers.arrays`: seeded inputs, tensors as NumPy, TensorFlow's window padding.
- :mod:`tests.helpers.gradients`: a layer's gradients on every backend, finite differences,
  and the precision each backend allows.
- :mod:`tests.helpers.layer_contract`: the checks every public layer passes (configuration,
  shapes, dtypes, mixed precision, channels_first, saving, training, refused inputs).

Data:

- :mod:`tests.helpers.dataset_files`: small dataset files written in the published formats.
- :mod:`tests.helpers.data_errors`: the one-line `DataError` message contract.

The app:

- :mod:`tests.helpers.app_config`: the real config composed with ``hydra.compose``.
- :mod:`tests.helpers.runs`: the training command line (in a subprocess, in the background or
  in this process), the checkpoints it writes, the MLflow runs it left behind (read through
  the client API only), and a synthetic sweep's store for a test to fill.
- :mod:`tests.helpers.signals`: a real SIGTERM at an epoch of an in-process training.
- :mod:`tests.helpers.logged_model`: a model logged as the training logs it, without training.
- :mod:`tests.helpers.disk`: a small file system of a test's own, filled to the last byte.

Real services, started for a test and always stopped (every one listens on 127.0.0.1 only,
keeps its files under the folder it is given, and is started in its own process group, which
is what stopping it kills):

- :mod:`tests.helpers.system`: Debian packages installed with apt-get when missing, free ports,
  waiting for a service, stopping a whole process group.
- :mod:`tests.helpers.postgres`: a private PostgreSQL cluster in a test's folder.
- :mod:`tests.helpers.servers`: ``mlflow server`` over any backend store.
- :mod:`tests.helpers.slurm`: a one-node Slurm cluster (with its own munged) in a test's folder.
- :mod:`tests.helpers.browser`: Debian's Chromium for the browser test.
"""
