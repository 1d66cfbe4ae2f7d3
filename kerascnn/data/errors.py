"""The error raised for invalid dataset arguments and unreadable dataset files.

`kerascnn.data` is a library: its messages speak of the Python arguments of `load_arrays` and
`make_pipelines`, never of a configuration. Every `DataError` message is one line, in Keras'
style, and names the argument that received the value twice: in backticks and as
``argument=value``, e.g.
``Invalid value for argument `val_split`. Expected a fraction in [0, 1). Received: val_split=1.5``
or, for a file under `path`,
``Invalid value for argument `path`. <what is wrong with which file>. Received: path='~/mnist'``.
A caller that offers these arguments under other names (the training app's config keys) can
map both forms without parsing anything else.
"""

from dataclasses import dataclass


class DataError(ValueError):
    """A dataset argument or a dataset file is invalid.

    The message is one line and names the argument of `load_arrays` or `make_pipelines` that
    received the value (``name``, ``path``, ``val_split``, ``image_size``, ...), both as
    `` `argument` `` and as ``argument=value``.
    """


def invalid_value(argument: str, value, problem: str, detail: str | None = None) -> DataError:
    """Return a `DataError` in Keras' style for one argument.

    The message reads ``Invalid value for argument `<argument>`. <problem>. Received:
    <argument>=<value!r>`` followed by `` (<detail>)`` when `detail` is given.
    """
    message = (
        f"Invalid value for argument `{argument}`. {problem.rstrip('.')}. "
        f"Received: {argument}={value!r}"
    )
    if detail:
        message += f" ({detail})"
    return DataError(message)


@dataclass(frozen=True)
class Received:
    """The public argument that a value (a path, a dataset name) arrived through.

    The file readers get one and name it in every error, so a problem found deep inside a file
    still points at the argument the caller can change.
    """

    argument: str
    value: object

    def error(self, problem: str, detail: str | None = None) -> DataError:
        """A `DataError` about this argument; see `invalid_value`."""
        return invalid_value(self.argument, self.value, problem, detail)


def one_line(exc: BaseException) -> str:
    """Return the message of `exc` squeezed onto one line (for wrapping foreign errors)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
