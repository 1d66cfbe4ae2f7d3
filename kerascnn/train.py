"""``python -m kerascnn.train`` (also ``kerascnn-train``): the training app's entry point.

The app lives in :mod:`kerascnn.app.train`; this module only keeps the documented command and
quiets TensorFlow's start-up log before anything imports TensorFlow.
"""

from kerascnn.app.quiet import quiet_startup

quiet_startup()

from kerascnn.app.train import main  # noqa: E402  (after the log levels are set)

if __name__ == "__main__":
    main()
