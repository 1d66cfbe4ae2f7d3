"""``python -m kerascnn.train`` (also ``kerascnn-train``): the training app's entry point.

The app lives in :mod:`kerascnn.app.train` (which quiets TensorFlow's start-up log before
anything imports TensorFlow); this module keeps the documented command, and names a missing
optional extra (``pip install "kerascnn[sweep]"``) before Hydra looks for its plugin.
"""

import sys

from kerascnn.app.extras import missing_extra
from kerascnn.app.train import main as hydra_main


def main():
    missing = missing_extra(sys.argv[1:])
    if missing:
        print(f"kerascnn.train: {missing}", file=sys.stderr)
        raise SystemExit(2)
    return hydra_main()


if __name__ == "__main__":
    main()
