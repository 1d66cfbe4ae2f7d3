"""``python -m kerascnn.export MODEL --format savedmodel|tflite|onnx --output PATH`` (also
``kerascnn-export``): a logged model exported to where models run.

The command lives in :mod:`kerascnn.app.export`; this module only keeps the documented command.
"""

import sys

from kerascnn.app.export import main

if __name__ == "__main__":
    sys.exit(main())
