"""The settings check: the whole config, once, into the schema's typed object.

:func:`check_settings` turns the composed config into :class:`~kerascnn.app.config.Config` (the
schema's dataclass, which the training then reads) and refuses, in one
:class:`~kerascnn.app.config.ConfigError` line, the first setting that cannot work:

- a key the app does not read (``+trainer.foo=1``): the typed groups (``data``, ``optimizer``,
  ``schedule``, ``trainer``, ``tracking`` and the top level) are closed; ``model`` and
  ``downsample`` stay open, since their keys are the arguments of a builder or a layer, checked
  where the model is built;
- a value out of range (the schema's ``__post_init__``);
- settings that only make sense together (early stopping on validation data without any);
- the data pipeline's arguments (the data library's own check, before anything is loaded).

It imports neither TensorFlow nor MLflow, so a bad setting is refused in a fraction of the
time TensorFlow takes to load.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kerascnn.app.config import Config, ConfigError, config_keys, validate
from kerascnn.data import check_pipeline_args  # NumPy only: the pipelines load TensorFlow

# The data library's arguments and the config keys they come from.
DATA_KEYS = {"name": "data.name", "path": "data.path", "val_split": "data.val_split",
             "image_size": "data.image_size", "batch_size": "trainer.batch_size",
             "seed": "trainer.seed", "augment": "data.augment", "flip": "data.flip",
             "normalize": "data.normalize", "limit": "data.limit"}


def check_settings(cfg: DictConfig) -> Config:
    """Every setting checked once; the typed config the training reads, or ConfigError."""
    refuse_unknown_keys(cfg)
    conf = validate(cfg)
    _check_together(conf)
    with config_keys(DATA_KEYS):
        check_pipeline_args(**pipeline_args(conf), image_size=conf.data.image_size)
    return conf


def pipeline_args(conf: Config) -> dict[str, Any]:
    """The data pipeline's arguments that come straight from settings (all but image_size)."""
    data = conf.data
    return dict(batch_size=conf.trainer.batch_size, val_split=data.val_split,
                augment=data.augment, flip=data.flip, seed=conf.trainer.seed,
                normalize=data.normalize, limit=data.limit)


def as_dict(conf: Config) -> dict[str, Any]:
    """The checked settings as plain values: what a run logs, hashes and stores."""
    return dataclasses.asdict(conf)


def _typed_nodes(node: DictConfig, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """The nodes of `node` (itself included) that a schema dataclass types, with their path."""
    if dataclasses.is_dataclass(OmegaConf.get_type(node)):
        yield path, node
    for key in node:
        child = node.get(key)  # None for a group set to null
        if isinstance(child, DictConfig):
            yield from _typed_nodes(child, f"{path}{key}.")


def refuse_unknown_keys(cfg: DictConfig) -> None:
    """Raise ConfigError for the first key a typed group does not have, naming the nearest."""
    for path, node in _typed_nodes(cfg):
        known = [f.name for f in dataclasses.fields(OmegaConf.get_type(node))]
        for key in node:
            if key not in known:
                nearest = difflib.get_close_matches(str(key), known, n=1, cutoff=0)[0]
                raise ConfigError(f"{path}{key} is not a setting; did you mean {path}{nearest}? "
                                  f"({path.rstrip('.') or 'the top level'} has "
                                  f"{', '.join(k for k in known if not k.startswith('_'))})")


def _check_together(conf: Config) -> None:
    trainer = conf.trainer
    if trainer.early_stopping_patience and trainer.early_stopping_monitor.startswith("val_") \
            and not conf.data.val_split:
        raise ConfigError(
            f"trainer.early_stopping_patience={trainer.early_stopping_patience} watches "
            f"{trainer.early_stopping_monitor}, but data.val_split=0 leaves no validation data; "
            "set data.val_split > 0 or trainer.early_stopping_monitor=loss")
