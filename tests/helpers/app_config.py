"""The app's real config, composed as the command line composes it (``hydra.compose``)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from hydra import compose, initialize_config_module

import kerascnn.app.train  # noqa: F401  (registers the structured configs and the resolver)

# The config groups as the app finds them: the package kerascnn.conf (the repository's conf/).
CONF_DIR = Path(str(importlib.resources.files("kerascnn.conf")))


def compose_config(*overrides: str):
    with initialize_config_module(config_module="kerascnn.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))
