"""The one check the library's three parts share, with no imports: ``bool`` is no integer.

``isinstance(True, int)`` holds in Python, so a setting such as ``batch_size=True`` would pass
a plain ``int`` check; layers, models and data all refuse it through :func:`is_int`.
"""

import numbers


def is_int(value) -> bool:
    """True for an integer (Python's or NumPy's), False for a bool or anything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
