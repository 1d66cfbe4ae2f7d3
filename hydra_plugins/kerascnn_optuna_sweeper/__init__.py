"""Hyper-parameter search with Optuna (>= 4) as a Hydra sweeper: ``hydra/sweeper=optuna``.

Registered like any Hydra plugin (``hydra_plugins`` is a namespace package: this folder has no
``__init__`` above it). The sweeper asks Optuna for trials, launches them through whatever
launcher is configured, and tells Optuna how each ended; each trial finds its study again
through the storage (:mod:`.handoff`), so a training in another process (a joblib worker, a
Slurm job) reports its epochs and is pruned there.

Hydra imports every module here whose name does not start with ``_`` while it scans for
plugins, outside ``sys.modules``: those modules import nothing heavy (Optuna is imported by
``_search`` or inside functions) and do not combine dataclasses with
``from __future__ import annotations``.
"""
