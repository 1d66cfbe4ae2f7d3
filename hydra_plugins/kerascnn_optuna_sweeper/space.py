"""The search space: Hydra's sweep syntax turned into Optuna distributions, sampled define-by-run.

``choice(a, b)`` is a categorical; ``interval(lo, hi)`` a float (an int when both ends are
ints), ``tag(log, interval(...))`` on a log scale; ``range(lo, hi[, step])`` ints (or floats
with a float step) from lo to hi, both included, as in Hydra's Optuna sweeper. Any other value
is fixed for every trial.

Conditional keys. A key inside a group the search also chooses (``downsample.p`` while
``downsample`` is sampled) is sampled only for the options whose config has that key (the
sweeper composes each option once to find out), and it is set with ``++``: users need not know
that Hydra composes the sweep's config before the group's choice.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer


def distribution(override: Override) -> Any:
    """The Optuna distribution of one sweep override, or None for a fixed value."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return None
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(
            transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        step = value.step if value.step is not None else 1
        if any(isinstance(v, float) for v in (value.start, value.stop, step)):
            return FloatDistribution(value.start, value.stop, step=step)
        return IntDistribution(int(value.start), int(value.stop), step=int(step))
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ValueError(f"{override.input_line}: not a sweep the Optuna sweeper can sample")


def suggest(trial: Any, name: str, dist: Any) -> Any:
    """Sample ``name`` on ``trial`` through the trial's public ``suggest_*``."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


@dataclass
class SearchSpace:
    """What each trial samples and what stays fixed, from ``params`` and the command line."""

    distributions: dict[str, Any]
    fixed: dict[str, str]       # key -> the override as given
    # key -> (group key, the group's options that have it)
    conditions: dict[str, tuple[str, set[Any]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> "SearchSpace":
        distributions: dict[str, Any] = {}
        fixed: dict[str, str] = {}
        for override in OverridesParser.create().parse_overrides(list(lines)):
            key = override.get_key_element().lstrip("+~")
            dist = distribution(override)
            if dist is None:
                fixed[key] = override.input_line
                distributions.pop(key, None)
            else:
                distributions[key] = dist
                fixed.pop(key, None)
        return cls(distributions, fixed)

    def nested_keys(self) -> dict[str, str]:
        """Sampled keys that lie inside a sampled categorical key: key -> that key."""
        from optuna.distributions import CategoricalDistribution

        groups = [k for k, d in self.distributions.items()
                  if isinstance(d, CategoricalDistribution)]
        return {key: group for key in self.distributions for group in groups
                if key.startswith(group + ".")}

    def find_conditions(self, has_key: Callable[[str, Any, str], bool]) -> None:
        """For each nested key, the options of its group whose config has it;
        ``has_key(group, option, key)`` composes one option and looks."""
        for key, group in self.nested_keys().items():
            choices = self.distributions[group].choices
            self.conditions[key] = (group, {c for c in choices if has_key(group, c, key)})

    def sample(self, trial: Any) -> dict[str, Any]:
        """Sample every key that applies to this trial; returns key -> value."""
        values: dict[str, Any] = {}
        for key, dist in self.distributions.items():
            condition = self.conditions.get(key)
            if condition is not None and values.get(condition[0]) not in condition[1]:
                continue
            values[key] = suggest(trial, key, dist)
        return values

    def overrides(self, values: dict[str, Any]) -> list[str]:
        """The job's overrides: the fixed ones as given, the sampled ones (keys inside a
        sampled group with ``++``)."""
        nested = self.nested_keys()
        lines = list(self.fixed.values())
        for key, value in values.items():
            text = "null" if value is None else str(value)
            lines.append(f"++{key}={text}" if key in nested else f"{key}={text}")
        return lines
