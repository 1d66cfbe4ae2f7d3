"""The downsampling factory: a spec (a name, a mapping or a callable) -> a Keras layer.

The architecture fixes where it downsamples and with which window (pool size, stride and
padding); the spec fixes how. One vocabulary serves the Python API and the `downsample`
config group:

| kind            | layer                                                  |
|-----------------|--------------------------------------------------------|
| `max`           | `keras.layers.MaxPooling2D`                            |
| `mean`          | `keras.layers.AveragePooling2D`                        |
| `pnorm`         | `PNormPooling2D` with a fixed `p` (default 2)          |
| `pnorm_learned` | `PNormPooling2D(trainable_p=True)`, `p` the initial p  |
| `mlp`           | `MLPPooling2D`: a small network on every window        |
| `conv`          | `StridedConvDownsampling2D` (a learned strided conv)   |
| `subsample`     | `TrainableSubsampling2D` (LeNet-5's S-layers)          |
"""

import inspect
from collections.abc import Mapping

import keras

from kerascnn import layers

__all__ = ["KINDS", "make_downsampling"]

KINDS = ("conv", "max", "mean", "mlp", "pnorm", "pnorm_learned", "subsample")

# Arguments the architecture decides; a spec may not set them.
_FIXED_BY_ARCHITECTURE = ("pool_size", "strides", "padding", "name", "data_format")


def _kind_table():
    # kind -> (layer class, arguments the kind itself fixes)
    return {
        "max": (keras.layers.MaxPooling2D, {}),
        "mean": (keras.layers.AveragePooling2D, {}),
        "pnorm": (layers.PNormPooling2D, {"trainable_p": False}),
        "pnorm_learned": (layers.PNormPooling2D, {"trainable_p": True}),
        "mlp": (layers.MLPPooling2D, {}),
        "conv": (layers.StridedConvDownsampling2D, {}),
        "subsample": (layers.TrainableSubsampling2D, {}),
    }


def _accepted_options(cls, fixed):
    parameters = inspect.signature(cls).parameters.values()
    return sorted(
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in _FIXED_BY_ARCHITECTURE
        and p.name not in fixed
    )


def _unknown_kind(spec):
    return ValueError(
        f"Unknown downsampling kind in spec={spec!r}. Known kinds: {', '.join(KINDS)}; a spec "
        "may also be a mapping with a 'name' key and options (e.g. {'name': 'pnorm', 'p': 3}) "
        "or a callable (pool_size, strides, padding, name) -> layer."
    )


def _split_spec(spec):
    """Returns `(kind, options)` for a name or mapping spec."""
    if isinstance(spec, str):
        return spec, {}
    name = spec.get("name")
    if not isinstance(name, str):
        raise ValueError(
            "Invalid value for argument `spec`. A mapping spec needs a 'name' key naming the "
            f"kind (one of {', '.join(KINDS)}). Received: spec={spec!r}"
        )
    options = {
        key: value
        for key, value in spec.items()
        if key != "name" and not (isinstance(key, str) and key.startswith("_"))
    }
    return name, options


def _check_options(options, kind, cls, fixed, spec):
    accepted = _accepted_options(cls, fixed)
    for option in options:
        if option in accepted:
            continue
        if option in _FIXED_BY_ARCHITECTURE:
            reason = "is fixed by the architecture"
        elif option in fixed:
            reason = f"is fixed by the kind {kind!r}"
        else:
            reason = "is not an option of this kind"
        raise ValueError(
            f"Invalid option `{option}` in downsampling spec={spec!r}: `{option}` {reason}. "
            f"Options accepted by {kind!r}: {', '.join(accepted) or 'none'}"
        )


def make_downsampling(
    spec, pool_size, strides=None, padding="valid", name=None, filters=None, *, defaults=None
):
    """Creates the downsampling layer that `spec` names, with the architecture's window.

    The spec picks the kind of downsampling; `pool_size`, `strides` and `padding` come from
    the architecture. Kinds: `max` (`MaxPooling2D`), `mean` (`AveragePooling2D`), `pnorm`
    (`PNormPooling2D`, fixed `p`, default 2), `pnorm_learned` (`PNormPooling2D` with
    `trainable_p=True`; `p` is the initial value, default 2), `mlp` (`MLPPooling2D`, a small
    network applied to every window, starting as the mean; options such as `hidden_units` and
    `shared`), `conv` (`StridedConvDownsampling2D`; `filters` output channels, `None` keeps the
    input's) and `subsample` (`TrainableSubsampling2D`).

    Args:
        spec: one of
            - a kind name, e.g. `"max"`;
            - a mapping with a `"name"` key (the kind) and options forwarded to the layer,
              e.g. `{"name": "pnorm", "p": 3}` or `{"name": "conv", "activation": None}`.
              Keys starting with `_` (such as Hydra's `_target_`) are ignored; an option the
              layer does not take, or one the architecture fixes (`pool_size`, `strides`,
              `padding`, `name`, `data_format`), raises;
            - a callable, called as
              `spec(pool_size=..., strides=..., padding=..., name=...)`, that returns a Keras
              layer named `name` (a Keras pooling class such as `keras.layers.MaxPooling2D`
              works as is). This is how a layer of your own plugs in.

            `None` is not a spec: builders replace it with their own default before calling.
        pool_size: int or tuple of 2 ints, the window size.
        strides: int, tuple of 2 ints or `None` (= `pool_size`).
        padding: `"valid"` or `"same"`.
        name: the layer's name (architectures use `down1`, `down2`, ...).
        filters: output channels of a `conv` downsampling (ignored by the other kinds);
            a `filters` option in the spec takes precedence. `None` keeps the channels.
        defaults: optional mapping `kind -> options` the architecture supplies for a kind
            (e.g. LeNet-5's squashing activation for `subsample`); the spec's own options
            override them. Ignored for callable specs.

    Returns:
        A Keras layer.

    Raises:
        ValueError: for `None`, an unknown kind, an unknown or fixed option, or a callable that
            does not return a Keras layer named `name`.

    Example:

    >>> make_downsampling({"name": "pnorm", "p": 3}, pool_size=3, strides=2, padding="same",
    ...                   name="down1")
    <PNormPooling2D name=down1, built=False>
    """
    if spec is None:
        raise ValueError(
            "Invalid value for argument `spec`. Expected a kind name, a mapping with a 'name' "
            "key or a callable; builders replace `downsample=None` with their own default. "
            "Received: spec=None"
        )
    if callable(spec) and not isinstance(spec, (str, Mapping)):
        layer = spec(pool_size=pool_size, strides=strides, padding=padding, name=name)
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                f"The downsampling callable spec={spec!r} must return a Keras layer. "
                f"Received: {layer!r}"
            )
        if name is not None and layer.name != name:
            raise ValueError(
                f"The downsampling callable spec={spec!r} must name its layer {name!r} (use "
                f"its `name` argument). Received a layer named {layer.name!r}"
            )
        return layer
    if not isinstance(spec, (str, Mapping)):
        raise _unknown_kind(spec)
    kind, options = _split_spec(spec)
    table = _kind_table()
    if kind not in table:
        raise _unknown_kind(spec)
    cls, fixed = table[kind]
    _check_options(options, kind, cls, fixed, spec)
    kind_defaults = dict((defaults or {}).get(kind, {}))
    _check_options(kind_defaults, kind, cls, fixed, {"name": kind, **kind_defaults})
    arguments = {**kind_defaults, **options}
    if kind == "conv":
        arguments.setdefault("filters", filters)
    return cls(
        pool_size=pool_size,
        strides=strides,
        padding=padding,
        name=name,
        **fixed,
        **arguments,
    )
