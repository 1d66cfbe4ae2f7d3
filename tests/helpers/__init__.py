"""Helpers shared by the tests: real services started for a test and always stopped.

- :mod:`tests.helpers.system`: Debian packages installed with apt-get when missing, free ports
  on 127.0.0.1, waiting for a service, stopping a whole process group.
- :mod:`tests.helpers.postgres`: a private PostgreSQL cluster in a test's folder.
- :mod:`tests.helpers.servers`: ``mlflow server`` over any backend store.
- :mod:`tests.helpers.slurm`: a one-node Slurm cluster (with its own munged) in a test's folder.
- :mod:`tests.helpers.runs`: the training command line in a subprocess, and the MLflow runs it
  left behind, read through the client API only.

Every service listens on 127.0.0.1 only, keeps its files under the folder it is given, and is
started in its own process group, which is what stopping it kills.
"""
