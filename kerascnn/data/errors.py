"""The error raised for invalid dataset settings and unreadable dataset files."""


class DataError(ValueError):
    """A dataset setting or a dataset file is invalid.

    The message is one line and names the configuration setting the user typed
    (``data.name``, ``data.path``, ``data.val_split``, ...) together with its value, so the
    training app can show it as is.
    """


def one_line(exc: BaseException) -> str:
    """Return the message of `exc` squeezed onto one line (for wrapping foreign errors)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
