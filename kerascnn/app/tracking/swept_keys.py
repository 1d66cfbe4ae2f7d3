"""Which keys a sweep varies, and the one way of setting a key inside them that cannot work.

A key inside a swept group (``downsample.p`` in a sweep over ``downsample``) must be set with
``++``: Hydra composes the sweep's config before the group's choice, and its own error
message suggests ``+``, which fails in every job whose option has the key.
"""

from __future__ import annotations

import sys

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig


def refuse_single_plus(config: DictConfig) -> None:
    """``+group.key=v`` in a sweep over ``group``: fails in the jobs where the chosen option
    has the key. Refused before anything starts, in one line that shows the ``++`` form."""
    swept = swept_keys(config)
    for override in config.hydra.overrides.task:
        if not override.startswith("+") or override.startswith("++"):
            continue
        key = override[1:].split("=", 1)[0]
        group = next((g for g in swept if key.startswith(g + ".")), None)
        if group is not None:
            print(f"{override} cannot be set in a sweep over {group}: write +{override} "
                  f"(sets {key} where the chosen {group} has it, adds it where not)",
                  file=sys.stderr, flush=True)
            raise SystemExit(2)


def swept_keys(config: DictConfig) -> list[str]:
    """Keys the sweep varies: choice/range overrides, plus an Optuna search space."""
    parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    keys = [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]
    params = config.hydra.sweeper.get("params") or {}
    return sorted(set(keys) | set(params.keys()))
