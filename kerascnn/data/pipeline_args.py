"""The arguments of `make_pipelines` that can be checked without the data or TensorFlow.

A caller checks them before loading anything (`check_pipeline_args`), so that a bad setting
fails at once; this module imports NumPy only.
"""

import numbers

import numpy as np

from kerascnn._checks import is_int
from kerascnn.data.errors import invalid_value

NORMALIZATIONS = ("unit", "standardize")
# Datasets whose classes change under a left-right mirror (digit glyphs): no flips by default.
NO_FLIP_DATASETS = ("digits", "mnist")


def check_pipeline_args(
    image_size=None,
    batch_size=128,
    val_split=0.1,
    augment=False,
    flip=None,
    seed=0,
    normalize="unit",
    limit=None,
):
    """Checks the arguments of `make_pipelines` that do not depend on the data.

    `make_pipelines` calls it first; a caller that loads the data itself can call it before
    loading, so that a bad setting fails before any work.

    Raises:
        DataError: naming the first invalid argument and its value.
    """
    if image_size is not None and not (is_int(image_size) and image_size >= 1):
        raise invalid_value("image_size", image_size, "Expected a positive integer or None")
    if not (is_int(batch_size) and batch_size >= 1):
        raise invalid_value("batch_size", batch_size, "Expected an integer >= 1")
    if not (
        isinstance(val_split, numbers.Real)
        and not isinstance(val_split, bool)
        and 0 <= val_split < 1
    ):
        raise invalid_value("val_split", val_split, "Expected a fraction in [0, 1)")
    if not isinstance(augment, bool | np.bool_):
        raise invalid_value("augment", augment, "Expected True or False")
    if flip is not None and not isinstance(flip, bool | np.bool_):
        raise invalid_value("flip", flip, "Expected True, False or None")
    if not is_int(seed):
        raise invalid_value("seed", seed, "Expected an integer")
    if normalize not in NORMALIZATIONS:
        raise invalid_value(
            "normalize", normalize, f"Expected one of {', '.join(map(repr, NORMALIZATIONS))}"
        )
    if limit is not None and not (is_int(limit) and limit >= 1):
        raise invalid_value("limit", limit, "Expected a positive integer or None")


def num_validation(num_examples: int, val_split: float) -> int:
    """The size of the validation split: ``round(num_examples * val_split)``, at least 1 when
    ``val_split > 0``."""
    if val_split == 0:
        return 0
    return max(1, int(round(num_examples * val_split)))
