"""How a trial reaches its study from the job that trains it, in any process.

The sweeper launches each trial with one environment variable (``hydra.job.env_set``, which
Hydra applies in the job's own process, whichever launcher runs it): the storage URL, the
study's name, the trial's number and the pruner's settings. The job opens the same storage,
finds its trial there and reports to it (:func:`job_trial`); a pruner is not kept in the
storage, so the job builds the sweeper's own from the settings. Only Optuna's public API is
used: ``optuna.load_study``, the storage's lookup of a trial id by number, ``optuna.trial.Trial``.
"""

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TRIAL_ENV = "KERASCNN_OPTUNA_TRIAL"
PRUNED_AT = "pruned_at_epoch"     # the trial's user attribute, set by the job that stops


def default_storage() -> str:
    """``sqlite:///<runs>/optuna.db``: the study beside the MLflow store."""
    from kerascnn.app.tracking.store import runs_dir

    return f"sqlite:///{runs_dir() / 'optuna.db'}"


def open_storage(url: str | None) -> Any:
    """Optuna's RDB storage at ``url`` (default :func:`default_storage`).

    SQLite waits for a lock up to a minute, as several processes write one study at once.
    """
    import optuna

    url = url or default_storage()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(url[len("sqlite:///"):]) or ".", exist_ok=True)
        kwargs = {"connect_args": {"timeout": 60}}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def make_pruner(spec: Any) -> Any:
    """The pruner a setting names: None/"none", a name of ``hydra/sweeper/pruner``, or a node
    with ``_target_`` (instantiated by Hydra)."""
    import optuna
    from hydra.utils import instantiate

    from .config import PRUNERS

    if spec is None or spec == "none":
        return optuna.pruners.NopPruner()
    if isinstance(spec, str):
        if spec not in PRUNERS:
            raise ValueError(f"hydra.sweeper.pruner={spec} is not a pruner; one of none, "
                             f"{', '.join(PRUNERS)}, or a node with a _target_")
        from dataclasses import asdict

        spec = asdict(PRUNERS[spec]())
    return instantiate(dict(spec))


def encode(storage: str, study_name: str, number: int, pruner: Any) -> str:
    """The environment variable's value (URL-safe base64 of JSON: no quoting in overrides)."""
    text = json.dumps({"storage": storage, "study": study_name, "number": number,
                       "pruner": pruner})
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(value: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def job_override(storage: str, study_name: str, number: int, pruner: Any) -> str:
    """The override that hands the trial to its job."""
    return f"++hydra.job.env_set.{TRIAL_ENV}={encode(storage, study_name, number, pruner)}"


@dataclass(frozen=True)
class TrialLink:
    """Which trial of which study a job trains."""

    storage: str
    study: str
    number: int
    pruner: Any = None


def trial_link(env: Mapping[str, str] | None = None) -> TrialLink | None:
    """The current job's trial (from ``env``, default the process's environment), else None."""
    value = (os.environ if env is None else env).get(TRIAL_ENV)
    if not value:
        return None
    data = decode(value)
    return TrialLink(data["storage"], data["study"], int(data["number"]), data.get("pruner"))


def job_trial(link: TrialLink) -> Any:
    """The job's ``optuna.trial.Trial``, on the study loaded with the sweeper's pruner."""
    import optuna

    storage = open_storage(link.storage)
    study = optuna.load_study(study_name=link.study, storage=storage,
                              pruner=make_pruner(link.pruner))
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(link.study), link.number)
    return optuna.trial.Trial(study, trial_id)
