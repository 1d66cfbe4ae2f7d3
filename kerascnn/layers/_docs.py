"""The docstring sections that the public layers share, written once.

Every layer documents its `data_format` argument and its input and output
shapes for both data formats in the same words; only the rank, the names of the spatial axes
and of the output channels change. A class docstring holds a line `$name` where a section
goes, and `document` (a class decorator) or `fill` puts the section there, indented as that
line is, so that `help()` shows the whole text.
"""

import re

AXES = {1: ("steps",), 2: ("height", "width"), 3: ("depth", "height", "width")}

DATA_FORMAT_ARG = """data_format: `"channels_last"` or `"channels_first"`; defaults to
    `keras.config.image_data_format()`."""


def tensor_shapes(rank, names, channels="channels", prefix=""):
    """`(batch_size, ..., channels)` and `(batch_size, channels, ...)` for the axes `names`."""
    spatial = ", ".join(f"{prefix}{name}" for name in names)
    return (
        f"{rank + 2}D tensor `(batch_size, {spatial}, {channels})`",
        f"{rank + 2}D tensor `(batch_size, {channels}, {spatial})`",
    )


def input_shape(rank):
    """The `Input shape:` section of a layer over `rank` spatial axes."""
    last, first = tensor_shapes(rank, AXES[rank])
    return f"""Input shape:

- If `data_format="channels_last"`: {last}.
- If `data_format="channels_first"`: {first}."""


def output_shape(rank, channels="channels", prefix="pooled_", condition="", names=None):
    """The `Output shape:` items of a layer with `channels` output channels whose spatial axes
    are `names` (by default the input's, renamed with `prefix`); `condition` starts each item."""
    last, first = tensor_shapes(rank, names or AXES[rank], channels, prefix)
    return f"""- If {condition}`data_format="channels_last"`:
    {last}.
- If {condition}`data_format="channels_first"`:
    {first}."""


def shapes(rank, channels="channels", prefix="pooled_"):
    """Both shape sections, for a layer that keeps the spatial axes."""
    return f"{input_shape(rank)}\n\nOutput shape:\n\n{output_shape(rank, channels, prefix)}"


_PLACEHOLDER = re.compile(r"^([ \t]*)\$(\w+)[ \t]*$", re.MULTILINE)


def fill(doc, **sections):
    """`doc` with every line `$name` replaced by `sections[name]`, indented as that line."""

    def section(match):
        indent, name = match.groups()
        return "\n".join(indent + line if line else line for line in sections[name].split("\n"))

    return _PLACEHOLDER.sub(section, doc)


def document(**sections):
    """A class decorator that fills `sections` into the class docstring (see `fill`)."""

    def decorate(cls):
        cls.__doc__ = fill(cls.__doc__, data_format_arg=DATA_FORMAT_ARG, **sections)
        return cls

    return decorate
