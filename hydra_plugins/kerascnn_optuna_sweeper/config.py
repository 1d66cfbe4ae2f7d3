"""The sweeper's settings (``hydra.sweeper.*``), its samplers and its pruners, in Hydra's
ConfigStore.

The keys are those of Hydra's own Optuna sweeper (``direction``, ``study_name``, ``storage``,
``n_trials``, ``n_jobs``, ``sampler``, ``params``, ``custom_search_space``,
``max_failure_rate``), plus ``pruner``: a name (``median``, ``successive_halving``,
``hyperband``, ``none``), a node of the ``hydra/sweeper/pruner`` group, or any node with a
``_target_``.
"""

# OmegaConf reads these annotations at run time: Optional/List/Dict, which it understands, and
# no `from __future__ import annotations` (Hydra runs this module outside sys.modules).
# ruff: noqa: UP006, UP007, UP035, UP045

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

PROVIDER = "kerascnn_optuna_sweeper"


@dataclass
class SamplerConfig:
    """What every sampler's node holds: the sampler's class and its seed."""

    _target_: str = MISSING
    seed: Optional[int] = None


@dataclass
class TPESamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = False
    group: bool = False
    constant_liar: bool = False  # parallel trials: pending points count as bad ones


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.CmaEsSampler"
    n_startup_trials: int = 1


@dataclass
class QMCSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = True


@dataclass
class GPSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.GPSampler"
    n_startup_trials: int = 10


@dataclass
class MedianPrunerConfig:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class SuccessiveHalvingPrunerConfig:
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class HyperbandPrunerConfig:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"   # the epochs of the first completed trial
    reduction_factor: int = 3
    bootstrap_count: int = 0


PRUNERS = {"median": MedianPrunerConfig, "successive_halving": SuccessiveHalvingPrunerConfig,
           "hyperband": HyperbandPrunerConfig}
SAMPLERS = {"tpe": TPESamplerConfig, "random": RandomSamplerConfig,
            "cmaes": CmaEsSamplerConfig, "qmc": QMCSamplerConfig, "gp": GPSamplerConfig}


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.kerascnn_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    # _self_ first: the chosen sampler and pruner fill the nodes below.
    defaults: List[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"},
                                                         {"pruner": None}])
    sampler: Any = None
    pruner: Any = None            # none: every trial runs to its last epoch
    direction: Any = "maximize"
    study_name: Optional[str] = None
    storage: Optional[str] = None    # None: sqlite:///<runs>/optuna.db
    n_trials: int = 20            # the total the study should reach (a rerun continues it)
    n_jobs: int = 2               # trials launched at a time
    # The search stops once more than this fraction of n_trials has failed.
    max_failure_rate: float = 0.5
    params: Optional[Dict[str, str]] = None
    custom_search_space: Optional[str] = None


def register() -> None:
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider=PROVIDER)
    for name, node in SAMPLERS.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=node, provider=PROVIDER)
    for name, node in PRUNERS.items():
        store.store(group="hydra/sweeper/pruner", name=name, node=node, provider=PROVIDER)


register()
