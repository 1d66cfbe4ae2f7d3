"""``python -m kerascnn.train`` (also ``kerascnn-train``): the training app's entry point.

The app lives in :mod:`kerascnn.app.train` (which quiets TensorFlow's start-up log before
anything imports TensorFlow); this module only keeps the documented command.
"""

from kerascnn.app.train import main

if __name__ == "__main__":
    main()
