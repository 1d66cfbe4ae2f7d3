"""Tests for the shared argument checks and the window output-size rule (`layers._args`)."""

import itertools

import keras
import numpy as np
import pytest

from kerascnn.layers import _args
from tests.helpers.arrays import np_windows

pytestmark = pytest.mark.backend_free

# (length, window, stride)
GEOMETRIES = list(itertools.product(range(1, 10), range(1, 5), range(1, 4)))


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_output_length_matches_keras_pooling(padding):
    for length, window, stride in GEOMETRIES:
        if padding == "valid" and window > length:
            continue
        pool = keras.layers.AveragePooling2D((window, 1), (stride, 1), padding)
        expected = pool.compute_output_shape((1, length, 1, 1))[1]
        assert _args.output_length(length, window, stride, padding) == expected
    assert _args.output_length(None, 3, 2, padding) is None


def test_same_padding_matches_the_numpy_windows_of_the_tests():
    for length, window, stride in GEOMETRIES:
        before, after = _args.same_padding(length, window, stride)
        x = np.zeros((1, length, 1, 1))
        padded, (out, _) = np_windows(x, (window, 1), (stride, 1), "same")
        assert before + length + after == padded.shape[1]
        assert 0 <= after - before <= 1
        assert out == _args.output_length(length, window, stride, "same")
        # The last window ends inside the padded input, exactly at its end where it is padded.
        last_end = (out - 1) * stride + window
        assert last_end <= padded.shape[1]
        assert last_end == padded.shape[1] or before + after == 0


def test_standardize_choice():
    assert _args.standardize_choice("SUM", "reduction", ("mean", "sum")) == "sum"
    for value in ("max", None, 1):
        with pytest.raises(ValueError, match=r"`reduction`.*Received: reduction="):
            _args.standardize_choice(value, "reduction", ("mean", "sum"))


def test_standardize_bool():
    assert _args.standardize_bool(np.bool_(True), "keepdims") is True
    assert _args.standardize_bool(False, "keepdims") is False
    for value in (1, "yes", None):
        with pytest.raises(ValueError, match=r"`keepdims`.*Received: keepdims="):
            _args.standardize_bool(value, "keepdims")
