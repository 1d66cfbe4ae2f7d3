"""The optional extras a command line needs, named before Hydra looks for their plugins.

Without the ``sweep`` extra, ``hparams_search=optuna`` fails inside Hydra with "Could not find
'hydra/sweeper/optuna'", which says nothing of the extra. The Hydra plugins a command line
chooses (``hydra/sweeper=...``, ``hydra/launcher=...``, or a config group's choice whose file
overrides them, as ``conf/hparams_search/optuna.yaml`` does) are looked up here first, without
importing them, and a missing one is named with the ``pip install`` that brings it.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import re

# (Hydra group, choice) -> (the module it needs, its package, the kerascnn extra holding it).
# The Optuna sweeper itself ships with kerascnn (hydra_plugins.kerascnn_optuna_sweeper); the
# extra brings Optuna.
PLUGINS = {
    ("sweeper", "optuna"): ("optuna", "optuna", "sweep"),
    ("launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher",
                                     "hydra-submitit-launcher", "sweep"),
    ("launcher", "submitit_slurm"): ("hydra_plugins.hydra_submitit_launcher",
                                     "hydra-submitit-launcher", "sweep"),
}
_OVERRIDE = re.compile(r"override\s+/hydra/(sweeper|launcher)\s*:\s*([\w-]+)")


def _chosen_plugins(override: str) -> list[tuple[str, str]]:
    key, _, value = override.lstrip("+~").partition("=")
    choices = [c.strip() for c in value.split(",") if c.strip()]
    if key in ("hydra/sweeper", "hydra/launcher"):
        return [(key.split("/")[1], c) for c in choices]
    if not re.fullmatch(r"\w+", key):
        return []
    found = []
    for choice in choices:
        try:
            text = (importlib.resources.files("kerascnn.conf") / key / f"{choice}.yaml")
            found += _OVERRIDE.findall(text.read_text())
        except (OSError, ValueError):
            continue  # not a config group of ours: Hydra says what is wrong with it
    return found


def missing_extra(overrides: list[str]) -> str | None:
    """One line naming the extra an override needs and lacks; None when all are installed."""
    for override in overrides:
        for plugin in _chosen_plugins(override):
            if plugin not in PLUGINS:
                continue
            module, package, extra = PLUGINS[plugin]
            if importlib.util.find_spec(module) is None:
                return (f"{override} needs the {extra} extra ({package} is not installed): "
                        f'pip install "kerascnn[{extra}]"')
    return None
