"""``python -m kerascnn.report --parent RUN_ID`` (also ``kerascnn-report``): a sweep's report.

The command lives in :mod:`kerascnn.app.report`; this module only keeps the documented
command and quiets TensorFlow's and MLflow's start-up log.
"""

import sys

from kerascnn.app.quiet import quiet_startup

quiet_startup()

from kerascnn.app.report import main  # noqa: E402  (after the log levels are set)

if __name__ == "__main__":
    sys.exit(main())
