"""The pictures logged with every run, as PNG artifacts under ``plots/``."""

from __future__ import annotations

import mlflow
import numpy as np

from kerascnn.app.tracking import model_plots, plots


def log_pictures(model, history: dict, pipelines, probabilities,
                 run_name: str | None = None) -> list[str]:
    """Learning curves, the test confusion matrix, first-layer filters, feature maps after
    each downsampling stage and, for learned p, p per channel. Returns the artifact paths.

    ``probabilities``: the model's outputs on the test set (the run's one pass over it).
    """
    figures = {
        "learning_curves": plots.learning_curves(history, run_name=run_name),
        "confusion_matrix": plots.confusion_matrix(
            pipelines.y_test, np.argmax(probabilities, axis=-1), pipelines.class_names,
            run_name=run_name),
        "first_layer_filters": model_plots.first_layer_filters(model, run_name=run_name),
        "feature_maps": model_plots.feature_maps(model, pipelines.x_test[0], run_name=run_name),
        "learned_p": model_plots.learned_p(model, run_name=run_name),
    }
    logged = []
    for name, figure in figures.items():
        if figure is None:
            continue
        path = f"plots/{name}.png"
        mlflow.log_figure(figure, path)
        logged.append(path)
    return logged
