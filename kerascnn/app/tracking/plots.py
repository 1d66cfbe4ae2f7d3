"""Pictures of one run for the MLflow UI: curves, confusion matrix, filters, feature maps, p.

Every function returns a ``matplotlib.figure.Figure`` drawn on an Agg canvas (no display and no
pyplot state are needed, so nothing leaks between figures), or ``None`` when the picture does not
apply to the model. ``save_figure`` writes a figure to a PNG file and releases it.

Example:

```python
fig = learning_curves(history.history, run_name="lenet5-pnorm-digits")
save_figure(fig, "plots/learning_curves.png")
```
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "confusion_counts",
    "confusion_matrix",
    "feature_maps",
    "first_layer_filters",
    "learned_p",
    "learning_curves",
    "metric_curves",
    "save_figure",
]

_MAX_ANNOTATED_CLASSES = 20
_MAX_FEATURE_CHANNELS = 16


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _title(text: str, run_name: str | None) -> str:
    return f"{run_name}: {text}" if run_name else text


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Writes `fig` as a PNG file (creating parent folders) and releases the figure.

    Args:
        fig: the figure to write.
        path: the PNG file to write.
        dpi: resolution in dots per inch.

    Returns:
        The path written, as a `Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # a figure made through pyplot is registered there: unregister it
        pyplot.close(fig)
    fig.clear()
    return path


def metric_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    metric: str,
    title: str | None = None,
) -> Figure:
    """Overlays one metric of several runs, one line per run.

    Args:
        curves: run name -> `(steps, values)`.
        metric: the metric's name, used for the y label.
        title: the figure title; defaults to ``"<metric> per epoch"``.

    Returns:
        The figure.
    """
    if not curves:
        raise ValueError(
            "Invalid value for argument `curves`. Expected at least one run. "
            f"Received: curves={curves}"
        )
    fig = _new_figure(8, 5)
    ax = fig.add_subplot()
    for name, (steps, values) in curves.items():
        steps = np.asarray(steps, dtype=float)
        ax.plot(steps + 1, values, marker="o" if len(steps) <= 30 else None, ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    ax.set_title(title or f"{metric} per epoch")
    return fig


def learning_curves(history: Mapping[str, Sequence[float]], run_name: str | None = None) -> Figure:
    """Loss and accuracy per epoch, training against validation, in two panels.

    A panel is drawn for each of ``loss`` and ``accuracy`` present in `history`; its
    validation curve (``val_loss``, ``val_accuracy``) is added when present.

    Args:
        history: metric name -> one value per epoch, as in `keras.callbacks.History.history`.
        run_name: shown in the title.

    Returns:
        The figure.

    Example:

    >>> fig = learning_curves({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})
    """
    bases = [b for b in ("loss", "accuracy") if b in history or f"val_{b}" in history]
    if not bases:
        raise ValueError(
            "Invalid value for argument `history`. Expected a `loss` or `accuracy` series. "
            f"Received: history keys={sorted(history)}"
        )
    fig = _new_figure(5 * len(bases), 4)
    axes = fig.subplots(1, len(bases), squeeze=False)[0]
    for ax, base in zip(axes, bases, strict=True):
        for key, label, style in ((base, "train", "-"), (f"val_{base}", "validation", "--")):
            values = history.get(key)
            if values is None or len(values) == 0:
                continue
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, values, style, marker="o" if len(values) <= 30 else None, ms=3,
                    label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(base)
        ax.set_title(base)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(_title("learning curves", run_name))
    return fig


def _as_labels(y, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2:  # one-hot targets or class probabilities
        y = y.argmax(axis=-1)
    if y.ndim != 1:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected class indices of shape (n,) or scores "
            f"of shape (n, classes). Received: {name}.shape={y.shape}"
        )
    return y.astype(np.int64)


def confusion_counts(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    ``counts[i, j]`` is the number of samples of class ``i`` predicted as class ``j``.

    Args:
        y_true: true class indices, shape `(n,)`, or one-hot targets `(n, classes)`.
        y_pred: predicted class indices `(n,)`, or class scores `(n, classes)` (arg-maxed).
        num_classes: the number of classes.

    Returns:
        An int64 array of shape `(num_classes, num_classes)`.
    """
    y_true = _as_labels(y_true, "y_true")
    y_pred = _as_labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(
            "Invalid value for argument `y_pred`. Expected as many predictions as targets. "
            f"Received: len(y_true)={len(y_true)}, len(y_pred)={len(y_pred)}"
        )
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(
                f"Invalid value for argument `{name}`. Expected class indices in "
                f"[0, {num_classes}). Received: {name} in [{y.min()}, {y.max()}]"
            )
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def confusion_matrix(
    y_true, y_pred, class_names: Sequence[str], run_name: str | None = None
) -> Figure:
    """The confusion matrix of a classifier, as counts, with the accuracy in the title.

    True classes run down the y axis, predicted classes along the x axis; the counts are written
    in the cells when there are at most 20 classes.

    Args:
        y_true: true class indices `(n,)` or one-hot targets `(n, classes)`.
        y_pred: predicted class indices `(n,)` or class scores `(n, classes)`.
        class_names: one name per class.
        run_name: shown in the title.

    Returns:
        The figure.
    """
    num_classes = len(class_names)
    if num_classes < 1:
        raise ValueError(
            "Invalid value for argument `class_names`. Expected at least one class. "
            f"Received: class_names={class_names}"
        )
    counts = confusion_counts(y_true, y_pred, num_classes)
    total = int(counts.sum())
    accuracy = np.trace(counts) / total if total else float("nan")

    size = min(4 + 0.45 * num_classes, 16)
    fig = _new_figure(size + 1.2, size)
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="samples")
    ticks = np.arange(num_classes)
    labels = [str(c) for c in class_names]
    if num_classes <= 50:
        ax.set_xticks(ticks, labels, rotation=90 if num_classes > 10 else 0)
        ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if num_classes <= _MAX_ANNOTATED_CLASSES:
        threshold = counts.max() / 2 if counts.size else 0
        for i in range(num_classes):
            for j in range(num_classes):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize="small",
                        color="white" if counts[i, j] > threshold else "black")
    ax.set_title(_title(f"confusion matrix (accuracy {accuracy:.2%}, n={total})", run_name))
    return fig


def _sublayers(layer) -> list:
    """The layers directly inside `layer`: a model's `layers`, or layer-valued attributes."""
    import keras

    if isinstance(layer, keras.Model):
        return list(layer.layers)
    children = []
    for name, value in vars(layer).items():
        if name.startswith("_"):
            continue
        values = value if isinstance(value, list | tuple) else [value]
        children.extend(v for v in values if isinstance(v, keras.layers.Layer))
    return children


def _walk(layers) -> Iterator:
    """Depth-first over `layers` and every layer nested inside them, each once."""
    seen: set[int] = set()
    stack = list(reversed(list(layers)))
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack.extend(reversed(_sublayers(layer)))


def _to_numpy(x) -> np.ndarray:
    import keras

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
    for layer in _walk(_sublayers(model)):
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
    fig = _new_figure(max(4.5, ncols * tile + 0.5), nrows * tile + 1.0)
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
        _title(f"filters of {layer.name}", run_name) + f"\n{cout} filters {kh}x{kw}, {mode}"
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
    import keras

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
    fig = _new_figure(1.0 * ncols + 1.2, 1.1 * nrows + 0.6)
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
    fig.suptitle(_title("feature maps after each downsampling stage", run_name))
    return fig


def _p_per_channel(layer) -> np.ndarray | None:
    p_values = getattr(layer, "p_values", None)
    if p_values is None or not getattr(layer, "trainable_p", True):
        return None
    values = p_values() if callable(p_values) else p_values
    return np.ravel(_to_numpy(values)).astype(float)


def learned_p(model, run_name: str | None = None) -> Figure | None:
    """The learned exponent p per channel of every learned p-norm pooling layer, as bars.

    A layer takes part when it has `p_values` (a method or attribute giving p per channel)
    and does not say `trainable_p = False` (a fixed p is no picture).
    Each panel marks p = 1 (mean of magnitudes) and the layer's mean p; large p approaches
    max pooling.

    Args:
        model: a Keras model (or layer holding layers).
        run_name: shown in the title.

    Returns:
        The figure, or `None` when no layer learns p.
    """
    found = []
    for layer in _walk(_sublayers(model)):
        values = _p_per_channel(layer)
        if values is not None:
            found.append((layer.name, values))
    if not found:
        return None
    fig = _new_figure(max(6, min(16, 0.15 * max(len(v) for _, v in found) + 3)),
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
    fig.suptitle(_title("learned p-norm exponents", run_name))
    return fig
