"""``kerascnn-ui`` (also ``python -m kerascnn.ui``; ``make ui`` calls it): the MLflow UI over
the runs folder's store.

The command lives in :mod:`kerascnn.app.ui`; this module only keeps the documented command.
"""

import sys

from kerascnn.app.ui import main

if __name__ == "__main__":
    sys.exit(main())
