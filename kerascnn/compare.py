"""``python -m kerascnn.compare`` (also ``kerascnn-compare``): compare finished runs.

The command lives in :mod:`kerascnn.app.compare`; this module only keeps the documented
command and quiets TensorFlow's and MLflow's start-up log.
"""

import sys

from kerascnn.app.quiet import quiet_startup

quiet_startup()

from kerascnn.app.compare import main  # noqa: E402  (after the log levels are set)

if __name__ == "__main__":
    sys.exit(main())
