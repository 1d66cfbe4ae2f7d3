"""The sweeper Hydra finds (``hydra/sweeper=optuna``). Optuna is imported only once it sweeps
(Hydra does not load ``_``-named modules when it scans for plugins),
so that a single run's start does not pay for it."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from . import config as _settings  # noqa: F401  (registers the settings' nodes)


class OptunaSweeper(Sweeper):
    """Optuna's ask/tell over Hydra's launchers; see :mod:`._search`."""

    def __init__(self, **settings: Any) -> None:
        from ._search import Search

        self._search = Search(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self._search.setup(hydra_context=hydra_context, task_function=task_function,
                           config=config)
        self.launcher = self._search.launcher

    def sweep(self, arguments: list[str]) -> Any:
        return self._search.sweep(arguments)
