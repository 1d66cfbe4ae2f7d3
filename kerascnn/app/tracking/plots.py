"""Charts of runs for the MLflow UI: learning curves, metric curves of several runs, and the
confusion matrix (the pictures of a model's insides are in
:mod:`kerascnn.app.tracking.model_plots`).

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

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "confusion_counts",
    "confusion_matrix",
    "learning_curves",
    "metric_curves",
    "new_figure",
    "save_figure",
    "titled",
]

_MAX_ANNOTATED_CLASSES = 20


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def titled(text: str, run_name: str | None) -> str:
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
    fig = new_figure(8, 5)
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
    fig = new_figure(5 * len(bases), 4)
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
    fig.suptitle(titled("learning curves", run_name))
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
    fig = new_figure(size + 1.2, size)
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
    ax.set_title(titled(f"confusion matrix (accuracy {accuracy:.2%}, n={total})", run_name))
    return fig
