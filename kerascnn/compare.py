"""``python -m kerascnn.compare`` (also ``kerascnn-compare``): compare finished runs.

The command lives in :mod:`kerascnn.app.compare`; this module only keeps the documented
command.
"""

import sys

from kerascnn.app.compare import main

if __name__ == "__main__":
    sys.exit(main())
