"""A registry of architecture builders by name, and the `build` entry point.

Builders register themselves with the `register` decorator; `build(name, ...)` looks one up
and calls it, so a configuration file can name an architecture as a string. The name is said
once, to `register`: the registered builder receives its `input_shape` and `num_classes`
checked (`check_build_args`) and its `downsample` spec resolved (`downsample_spec`, the
architecture's own kind for `None`), and the model it returns is named after it:

```python
@register("my_net", input_shape=(32, 32, 3), min_size=8, description="...")
def my_net(input_shape=(32, 32, 3), num_classes=10, downsample=None):
    ...   # input_shape a tuple of ints, downsample the spec to build with

model = build("my_net", (32, 32, 3), num_classes=10)   # model.name == "my_net"
```
"""

import dataclasses
import functools
import inspect
from collections.abc import Callable, Sequence

from kerascnn._checks import is_int

__all__ = [
    "ModelInfo",
    "build",
    "check_build_args",
    "downsample_spec",
    "info",
    "names",
    "register",
]

_REGISTRY = {}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about an architecture.

    Attributes:
        name: the registered name, also the name of the built `keras.Model`.
        builder: the function that builds the model,
            `builder(input_shape, num_classes, downsample=None, **kwargs)`.
        input_shape: the input of the paper that defines the architecture, channels last,
            e.g. `(32, 32, 3)` for CIFAR-10.
        min_size: the smallest square spatial size (height = width) the architecture accepts;
            each spatial dimension must be at least this large.
        description: one line, shown in listings.
        pluggable_downsample: whether the architecture has downsampling stages that a
            `downsample` spec can replace. When `False` the builder accepts only
            `downsample=None`.
        default_downsample: the kind of downsampling the paper uses (`"max"`, `"conv"`,
            `"subsample"`, ...), what `downsample=None` builds; `None` when there is no
            separate downsampling stage.
    """

    name: str
    builder: Callable
    input_shape: tuple
    min_size: int
    description: str
    pluggable_downsample: bool = True
    default_downsample: str | None = None


def register(
    name,
    input_shape,
    min_size,
    description="",
    pluggable_downsample=True,
    default_downsample=None,
):
    """Decorator that registers an architecture builder under `name`.

    Args:
        name: the registered name (a non-empty string, unique).
        input_shape: the paper's input shape `(height, width, channels)`.
        min_size: the smallest square spatial size the architecture accepts.
        description: one line describing the architecture.
        pluggable_downsample: whether the builder takes a `downsample` spec.
        default_downsample: the kind `downsample=None` builds (the paper's choice).

    Returns:
        A decorator that registers the builder and returns it with its arguments checked and
        its model named `name` (see the module docstring).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(
            "Invalid value for argument `name`. Expected a non-empty string. "
            f"Received: name={name!r}"
        )
    if name in _REGISTRY:
        raise ValueError(f"A model named {name!r} is already registered.")
    input_shape = _standardize_input_shape(input_shape)
    if not is_int(min_size) or min_size < 1:
        raise ValueError(
            "Invalid value for argument `min_size`. Expected a positive integer. "
            f"Received: min_size={min_size!r}"
        )

    def decorator(builder):
        signature = inspect.signature(builder)

        @functools.wraps(builder)
        def registered(*args, **kwargs):
            call = signature.bind(*args, **kwargs)
            call.apply_defaults()
            given = call.arguments
            given["input_shape"], given["num_classes"] = check_build_args(
                name, given["input_shape"], given["num_classes"]
            )
            given["downsample"] = downsample_spec(name, given["downsample"])
            model = builder(*call.args, **call.kwargs)
            model.name = name
            return model

        _REGISTRY[name] = ModelInfo(
            name=name,
            builder=registered,
            input_shape=input_shape,
            min_size=int(min_size),
            description=description,
            pluggable_downsample=bool(pluggable_downsample),
            default_downsample=default_downsample,
        )
        return registered

    return decorator


def names():
    """Returns the registered model names, sorted."""
    return sorted(_REGISTRY)


def info(name):
    """Returns the `ModelInfo` of the model registered as `name`.

    Raises:
        ValueError: if no model is registered under `name`; the message lists the known names.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown model: name={name!r}. Known models: {', '.join(names())}"
        ) from None


def build(name, input_shape, num_classes, downsample=None, **kwargs):
    """Builds the registered architecture `name` as a functional `keras.Model`.

    Args:
        name: a registered model name (see `names()`).
        input_shape: `(height, width, channels)`, channels last; `None` means the paper's
            input (`info(name).input_shape`).
        num_classes: number of classes (>= 2); the model outputs softmax probabilities.
        downsample: a downsampling spec (see `kerascnn.models.make_downsampling`) or `None`
            for the architecture's own downsampling.
        **kwargs: further options of the builder (e.g. `dropout` for the All-CNN family).

    Returns:
        A `keras.Model` named `name`.

    Raises:
        ValueError: for an unknown name, an option the builder does not take, a downsample
            spec given to an architecture without pluggable downsampling, or invalid
            `input_shape` / `num_classes`.
    """
    model_info = info(name)
    if input_shape is None:
        input_shape = model_info.input_shape
    parameters = inspect.signature(model_info.builder).parameters
    accepted = [p for p in parameters if p not in ("input_shape", "num_classes", "downsample")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"Invalid option(s) for model {name}: {', '.join(unknown)}. "
            f"Accepted options: {', '.join(accepted) or 'none'}"
        )
    return model_info.builder(
        input_shape=input_shape, num_classes=num_classes, downsample=downsample, **kwargs
    )


def downsample_spec(name, downsample):
    """The downsampling spec the architecture `name` builds with.

    The registry is the one table of which architectures have a pluggable downsampling stage
    and which kind they use by default: builders call this instead of deciding themselves.

    Args:
        name: a registered model name.
        downsample: a spec (see `kerascnn.models.make_downsampling`) or `None`.

    Returns:
        `downsample`, or the architecture's default kind when it is `None` (`None` for an
        architecture without a separate downsampling stage).

    Raises:
        ValueError: when a spec is given to an architecture without pluggable downsampling.
    """
    model_info = info(name)
    if not model_info.pluggable_downsample:
        if downsample is not None:
            raise ValueError(
                f"{name} has no pooling stage; downsample must be None. "
                f"Received: downsample={downsample!r}"
            )
        return None
    return model_info.default_downsample if downsample is None else downsample


def _standardize_input_shape(input_shape):
    valid = (
        isinstance(input_shape, Sequence)
        and not isinstance(input_shape, (str, bytes))
        and len(input_shape) == 3
        and all(is_int(d) and d > 0 for d in input_shape)
    )
    if not valid:
        raise ValueError(
            "Invalid value for argument `input_shape`. Expected a tuple of 3 positive integers "
            f"(height, width, channels). Received: input_shape={input_shape!r}"
        )
    return tuple(int(d) for d in input_shape)


def check_build_args(name, input_shape, num_classes, min_size=None):
    """Validates a builder's `input_shape` and `num_classes`.

    Builders call it first, so that bad arguments fail with a clear message before any layer
    is created.

    Args:
        name: the model's name, used in the messages.
        input_shape: `(height, width, channels)`, positive integers.
        num_classes: an integer >= 2.
        min_size: smallest accepted height and width; `None` means `info(name).min_size`.

    Returns:
        `(input_shape, num_classes)`: a tuple of Python ints and a Python int.

    Raises:
        ValueError: naming the argument and value, or, for a too-small input, naming the
            model, the input size and the smallest accepted size.
    """
    input_shape = _standardize_input_shape(input_shape)
    if not is_int(num_classes) or num_classes < 2:
        raise ValueError(
            "Invalid value for argument `num_classes`. Expected an integer >= 2. "
            f"Received: num_classes={num_classes!r}"
        )
    if min_size is None:
        min_size = info(name).min_size
    height, width, _ = input_shape
    if height < min_size or width < min_size:
        raise ValueError(
            f"{name} needs inputs of at least {min_size}x{min_size}, got {height}x{width}"
        )
    return input_shape, int(num_classes)
