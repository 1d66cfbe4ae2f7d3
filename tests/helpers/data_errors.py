"""Checks every data-test shares: the one-line `DataError` contract of kerascnn.data."""

import re

import pytest

from kerascnn.data import DataError, load_arrays

# The training app's config keys: the library must never name them (the app maps arguments).
_CONFIG_KEY = re.compile(
    r"\b(data|trainer)\.(name|path|val_split|image_size|batch_size|seed|"
    r"augment|flip|normalize|limit)\b"
)


def assert_names_argument(message: str, argument: str, value) -> None:
    """`message` is one line and names `argument` as `` `argument` `` and ``argument=value``,
    with `value` shown as its repr; it names no config key."""
    assert "\n" not in message, message
    assert f"`{argument}`" in message, message
    assert f"{argument}={value!r}" in message, message
    assert not _CONFIG_KEY.search(message), message


def expect_load_error(match, name, path) -> str:
    """`load_arrays(name, path)` fails with a `DataError` that matches `match` and names the
    `path` argument (see `assert_names_argument`); returns the message."""
    with pytest.raises(DataError, match=match) as info:
        load_arrays(name, str(path))
    message = str(info.value)
    assert_names_argument(message, "path", str(path))
    return message
