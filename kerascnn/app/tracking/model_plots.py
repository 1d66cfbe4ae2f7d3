"""Pictures of a model's insides for the MLflow UI: first-layer filters, feature maps after
each downsampling stage, and the learned p per channel.

Every function returns a ``matplotlib.figure.Figure`` on an Agg canvas (see
:mod:`kerascnn.app.tracking.plots`), or ``None`` when the picture does not apply to the model.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from matplotlib.figure import Figure

from kerascnn.app.tracking.callbacks import learned_p_layers, sublayers, walk_layers
from kerascnn.app.tracking.plots import new_figure, titled

__all__ = ["feature_maps", "first_layer_filters", "learned_p"]

_MAX_FEATURE_CHANNELS = 16


def _to_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def first_layer_filters(model, run_name: str | None = None) -> Figure | None:
    """The filters of the first convolution of `model`, one tile per output channel.

    The first layer (depth first, looking inside composite layers) whose `kernel` has the 4D
    shape `(kh, kw, in_channels, filters)` is drawn. With 3 input channels each filter is shown
    in colour, min-max normalised; otherwise the mean over the input channels is shown in grey.

    Args:
        model: a Keras model (or layer holding layers).
        run_name: shown in the title.

    Returns:
        The figure, or `None` when the model has no 4D kernel.
    """
    found = None
    for layer in walk_layers(sublayers(model)):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and len(kernel.shape) == 4:
            found = layer, _to_numpy(kernel)
            break
    if found is None:
        return None
    layer, kernel = found
    kh, kw, cin, cout = kernel.shape
    ncols = math.ceil(math.sqrt(cout))
    nrows = math.ceil(cout / ncols)
    tile = max(0.5, min(1.0, 8 / ncols))
    fig = new_figure(max(4.5, ncols * tile + 0.5), nrows * tile + 1.0)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for index, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if index >= cout:
            ax.set_axis_off()
            continue
        weights = kernel[..., index]
        if cin == 3:
            low, high = weights.min(), weights.max()
            ax.imshow((weights - low) / (high - low) if high > low else np.zeros_like(weights),
                      interpolation="nearest")
        else:
            ax.imshow(weights.mean(axis=-1), cmap="gray", interpolation="nearest")
        ax.set_title(str(index), fontsize="x-small", pad=2)
    mode = {1: "grayscale", 3: "RGB"}.get(cin, f"mean over {cin} input channels")
    fig.suptitle(
        titled(f"filters of {layer.name}", run_name) + f"\n{cout} filters {kh}x{kw}, {mode}"
    )
    return fig


def feature_maps(model, image, run_name: str | None = None) -> Figure | None:
    """Activations of one image after each downsampling stage of `model`.

    The stages are the model's layers whose names start with ``down`` (``down1``, ``down2``, ...).
    The input image is the first row; each stage is a row of its first 16 channels, labelled
    with the layer name and the activation shape.

    Args:
        model: a functional or sequential Keras model.
        image: one input image, shape `(height, width, channels)` (no batch axis).
        run_name: shown in the title.

    Returns:
        The figure, or `None` when no layer name starts with ``down``.
    """
    names = [layer.name for layer in model.layers if layer.name.startswith("down")]
    if not names:
        return None
    image = np.asarray(image, dtype="float32")
    if image.ndim != 3:
        raise ValueError(
            "Invalid value for argument `image`. Expected one image of shape "
            f"(height, width, channels). Received: image.shape={image.shape}"
        )
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    outputs = probe(image[None], training=False)
    if not isinstance(outputs, list | tuple):
        outputs = [outputs]
    maps = []
    for name, out in zip(names, outputs, strict=True):
        out = _to_numpy(out)[0]
        if out.ndim != 3:
            raise ValueError(
                f"Layer `{name}` of the model does not output feature maps: "
                f"expected a 4D output, got shape {(None, *out.shape)}"
            )
        if getattr(model.get_layer(name), "data_format", None) == "channels_first":
            out = np.moveaxis(out, 0, -1)
        maps.append((name, out))

    ncols = min(_MAX_FEATURE_CHANNELS, max(m.shape[-1] for _, m in maps))
    nrows = len(maps) + 1
    fig = new_figure(1.0 * ncols + 1.2, 1.1 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])

    shown = image if image.shape[-1] == 3 else image.mean(axis=-1)
    if shown.ndim == 3:
        low, high = shown.min(), shown.max()
        shown = (shown - low) / (high - low) if high > low else np.zeros_like(shown)
    axes[0, 0].imshow(shown, cmap=None if shown.ndim == 3 else "gray", interpolation="nearest")
    axes[0, 0].set_ylabel(f"input\n{'x'.join(map(str, image.shape))}", fontsize="small")
    for ax in axes[0, 1:]:
        ax.set_axis_off()

    for row, (name, out) in enumerate(maps, start=1):
        channels = out.shape[-1]
        for col in range(ncols):
            ax = axes[row, col]
            if col >= channels:
                ax.set_axis_off()
                continue
            ax.imshow(out[..., col], cmap="viridis", interpolation="nearest")
            ax.set_title(f"ch {col}", fontsize="x-small", pad=2)
        axes[row, 0].set_ylabel(f"{name}\n{'x'.join(map(str, out.shape))}", fontsize="small")
    fig.suptitle(titled("feature maps after each downsampling stage", run_name))
    return fig


def learned_p(model, run_name: str | None = None) -> Figure | None:
    """The learned exponent p per channel of every learned p-norm pooling layer, as bars.

    The layers are those of :func:`~kerascnn.app.tracking.callbacks.learned_p_layers`, whose
    p the run also logs per epoch (a fixed p is no picture).
    Each panel marks p = 1 (mean of magnitudes) and the layer's mean p; large p approaches
    max pooling.

    Args:
        model: a Keras model (or layer holding layers).
        run_name: shown in the title.

    Returns:
        The figure, or `None` when no layer learns p.
    """
    found = [(layer.name, np.ravel(_to_numpy(layer.p_values())).astype(float))
             for layer in learned_p_layers(model)]
    if not found:
        return None
    fig = new_figure(max(6, min(16, 0.15 * max(len(v) for _, v in found) + 3)),
                      2.8 * len(found) + 0.5)
    axes = fig.subplots(len(found), 1, squeeze=False)[:, 0]
    for ax, (name, values) in zip(axes, found, strict=True):
        channels = np.arange(len(values))
        ax.bar(channels, values, color="tab:blue", label="p per channel")
        ax.axhline(1.0, color="black", linestyle=":", label="p = 1 (mean)")
        ax.axhline(values.mean(), color="tab:red", linestyle="--",
                   label=f"mean p = {values.mean():.3g}")
        ax.set_xlabel("channel")
        ax.set_ylabel("p")
        ax.set_title(f"{name} ({len(values)} channels)")
        ax.legend(fontsize="small", loc="best")
    fig.suptitle(titled("learned p-norm exponents", run_name))
    return fig
