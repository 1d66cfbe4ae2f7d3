"""MLflow tracking for the training app: the store, Keras callbacks, sweep callbacks and plots."""

from kerascnn.app.tracking.store import (
    artifact_location,
    default_tracking_uri,
    ensure_experiment,
    resolve_tracking_uri,
    runs_dir,
)

__all__ = [
    "artifact_location",
    "default_tracking_uri",
    "ensure_experiment",
    "resolve_tracking_uri",
    "runs_dir",
]
