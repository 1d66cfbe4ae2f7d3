"""The downsampling factory: kinds, options, callables and rejected specs."""

import math

import keras
import numpy as np
import pytest

from kerascnn import layers, models
from kerascnn.models import KINDS, make_downsampling
from tests.helpers.arrays import to_numpy

EXPECTED_CLASSES = {
    "max": keras.layers.MaxPooling2D,
    "mean": keras.layers.AveragePooling2D,
    "pnorm": layers.PNormPooling2D,
    "pnorm_learned": layers.PNormPooling2D,
    "mlp": layers.MLPPooling2D,
    "conv": layers.StridedConvDownsampling2D,
    "subsample": layers.TrainableSubsampling2D,
}


def _out_size(n, window, stride, padding):
    return math.ceil(n / stride) if padding == "same" else (n - window) // stride + 1


def _windows(x, window, stride):
    """NumPy: the valid windows of a (batch, h, w, c) array, shape (batch, oh, ow, k*k, c)."""
    batch, height, width, channels = x.shape
    out_h, out_w = (height - window) // stride + 1, (width - window) // stride + 1
    out = np.empty((batch, out_h, out_w, window * window, channels), x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * stride : i * stride + window, j * stride : j * stride + window, :]
            out[:, i, j] = patch.reshape(batch, window * window, channels)
    return out


def test_kinds_are_the_design_vocabulary():
    assert sorted(KINDS) == sorted(
        ["max", "mean", "pnorm", "pnorm_learned", "mlp", "conv", "subsample"]
    )


def test_every_kind_makes_its_layer_with_the_architecture_window():
    x = np.random.default_rng(0).normal(size=(2, 7, 9, 4)).astype("float32")
    for kind in KINDS:
        for window, stride, padding in [(2, 2, "valid"), (3, 2, "same"), (3, 1, "valid")]:
            layer = make_downsampling(kind, window, stride, padding, name="down1")
            assert type(layer) is EXPECTED_CLASSES[kind], kind
            assert layer.name == "down1"
            config = layer.get_config()
            assert tuple(config["pool_size"]) == (window, window)
            assert tuple(config["strides"]) == (stride, stride)
            assert config["padding"] == padding
            y = layer(x)
            expected = (
                2,
                _out_size(7, window, stride, padding),
                _out_size(9, window, stride, padding),
                4,
            )
            assert tuple(y.shape) == expected, (kind, window, stride, padding)


def test_strides_default_to_the_pool_size():
    for kind in KINDS:
        layer = make_downsampling(kind, 2)
        assert tuple(layer.get_config()["strides"]) == (2, 2), kind


def test_max_and_mean_compute_max_and_mean():
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype("float32")
    windows = _windows(x, 3, 3)
    y_max = to_numpy(make_downsampling("max", 3)(x))
    y_mean = to_numpy(make_downsampling({"name": "mean"}, 3)(x))
    np.testing.assert_allclose(y_max, windows.max(axis=3), rtol=1e-6)
    np.testing.assert_allclose(y_mean, windows.mean(axis=3), rtol=1e-5, atol=1e-6)


def test_pnorm_p_reaches_the_layer():
    x = np.random.default_rng(2).normal(size=(2, 4, 4, 3)).astype("float32")
    default = make_downsampling("pnorm", 2)
    assert default.p == 2 and not default.trainable_p
    layer = make_downsampling({"name": "pnorm", "p": 3}, 2)
    assert layer.get_config()["p"] == 3
    assert not layer.trainable_p
    expected = np.mean(np.abs(_windows(x, 2, 2)) ** 3, axis=3) ** (1 / 3)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5)
    assert make_downsampling({"name": "pnorm", "p": "inf"}, 2).p == math.inf


def test_pnorm_learned_learns_p_per_channel_from_the_given_start():
    layer = make_downsampling({"name": "pnorm_learned", "p": 3}, 3, 2, "same")
    assert layer.trainable_p
    layer.build((None, 8, 8, 5))
    assert len(layer.trainable_weights) == 1
    np.testing.assert_allclose(layer.p_values(), np.full(5, 3.0), rtol=1e-5)
    default = make_downsampling("pnorm_learned", 2)
    default.build((None, 4, 4, 2))
    np.testing.assert_allclose(default.p_values(), [2.0, 2.0], rtol=1e-5)


def test_conv_filters_keep_channels_by_default_and_the_spec_overrides():
    x = np.zeros((1, 8, 8, 6), "float32")
    assert make_downsampling("conv", 2)(x).shape[-1] == 6
    assert make_downsampling("conv", 2, filters=10)(x).shape[-1] == 10
    assert make_downsampling({"name": "conv", "filters": 4}, 2, filters=10)(x).shape[-1] == 4
    # filters only concerns the conv kind: the pooling kinds keep the channels
    for kind in ("max", "mean", "pnorm", "pnorm_learned", "mlp", "subsample"):
        assert make_downsampling(kind, 2, filters=10)(x).shape[-1] == 6, kind


def test_conv_options_are_forwarded():
    x = np.random.default_rng(3).normal(size=(2, 6, 6, 3)).astype("float32")
    relu = make_downsampling("conv", 2)
    linear = make_downsampling({"name": "conv", "activation": None}, 2)
    assert np.min(to_numpy(relu(x))) >= 0
    assert np.min(to_numpy(linear(x))) < 0
    depthwise = make_downsampling({"name": "conv", "depthwise": True, "use_bias": False}, 2)
    depthwise.build((None, 6, 6, 3))
    assert depthwise.count_params() == 2 * 2 * 3


def test_subsample_options_are_forwarded():
    x = np.random.default_rng(4).normal(size=(2, 4, 4, 2)).astype("float32")
    layer = make_downsampling({"name": "subsample", "activation": "tanh"}, 2)
    expected = np.tanh(_windows(x, 2, 2).sum(axis=3))  # coefficient 1, bias 0 at start
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)


def test_mlp_options_are_forwarded_and_it_starts_as_the_mean():
    x = np.random.default_rng(5).normal(size=(2, 7, 9, 4)).astype("float32")
    default = make_downsampling("mlp", 2)
    assert default.shared and default.hidden_units == layers.MLPPooling2D().hidden_units
    spec = {"name": "mlp", "hidden_units": [8], "shared": False, "activation": "tanh"}
    layer = make_downsampling(spec, 3, 2, "same", name="down1")
    assert (layer.hidden_units, layer.shared, layer.name) == ((8,), False, "down1")
    assert layer.get_config()["activation"] == "tanh"
    # Every channel its own 9 -> 8 -> 1 network; the output layer starts at zero.
    layer.build(x.shape)
    assert layer.count_params() == 4 * (9 * 8 + 8 + 8 + 1)
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))  # "same" for 3x3 windows, stride 2, on 7 x 9
    sums = _windows(np.pad(x, pad), 3, 2).sum(axis=3)
    expected = sums / _windows(np.pad(np.ones((1, 7, 9, 1)), pad), 3, 2).sum(axis=3)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)


def test_mlp_omegaconf_spec_and_bad_values():
    omegaconf = pytest.importorskip("omegaconf")
    spec = omegaconf.OmegaConf.create({"name": "mlp", "hidden_units": [16, 8], "shared": True})
    layer = make_downsampling(spec, 2)
    assert isinstance(layer, layers.MLPPooling2D) and layer.hidden_units == (16, 8)
    with pytest.raises(ValueError, match="Received: hidden_units=8"):
        make_downsampling({"name": "mlp", "hidden_units": 8}, 2)
    with pytest.raises(ValueError, match="`p` is not an option of this kind") as error:
        make_downsampling({"name": "mlp", "p": 3}, 2)
    assert "hidden_units" in str(error.value) and "shared" in str(error.value)


@pytest.mark.parametrize(
    "name", [name for name in models.names() if models.info(name).pluggable_downsample]
)
def test_mlp_downsampling_builds_every_pluggable_architecture(name):
    model_info = models.info(name)
    size = max(model_info.min_size, 4)
    spec = {"name": "mlp", "hidden_units": [8], "shared": False}
    model = models.build(name, (size, size, model_info.input_shape[-1]), 3, downsample=spec)
    downs = [layer for layer in model.layers if layer.name.startswith("down")]
    assert [layer.name for layer in downs] == ["down1", "down2"]
    for layer in downs:
        assert type(layer) is layers.MLPPooling2D
        assert (layer.hidden_units, layer.shared) == ((8,), False)
    assert model.output_shape == (None, 3)


def test_config_keys_name_and_underscores_are_ignored():
    spec = {"name": "pnorm", "p": 4, "_target_": "some.Config", "_partial_": True}
    layer = make_downsampling(spec, 2)
    assert isinstance(layer, layers.PNormPooling2D)
    assert layer.p == 4


def test_omegaconf_mappings_work_as_specs():
    omegaconf = pytest.importorskip("omegaconf")
    spec = omegaconf.OmegaConf.create({"name": "pnorm_learned", "p": 3.0, "_target_": "x"})
    layer = make_downsampling(spec, 2)
    assert isinstance(layer, layers.PNormPooling2D) and layer.trainable_p


def test_architecture_defaults_apply_and_the_spec_overrides_them():
    defaults = {"conv": {"activation": None}, "subsample": {"activation": "tanh"}}
    assert make_downsampling("conv", 2, defaults=defaults).get_config()["activation"] == "linear"
    spec = {"name": "conv", "activation": "relu"}
    assert make_downsampling(spec, 2, defaults=defaults).get_config()["activation"] == "relu"
    subsample = make_downsampling("subsample", 2, defaults=defaults)
    assert subsample.get_config()["activation"] == "tanh"
    # defaults of other kinds do not leak
    assert isinstance(make_downsampling("max", 2, defaults=defaults), keras.layers.MaxPooling2D)


def test_unknown_options_are_rejected_by_name():
    cases = [
        ({"name": "max", "p": 3}, "`p`"),
        ({"name": "pnorm", "q": 3}, "`q`"),
        ({"name": "conv", "kernel_size": 3}, "`kernel_size`"),
        ({"name": "subsample", "filters": 3}, "`filters`"),
    ]
    for spec, option in cases:
        with pytest.raises(ValueError, match=option) as error:
            make_downsampling(spec, 2)
        assert repr(spec["name"]) in str(error.value)


def test_options_fixed_by_the_architecture_or_the_kind_are_rejected():
    for option in ("pool_size", "strides", "padding", "name", "data_format"):
        if option == "name":
            continue  # `name` picks the kind, so it can never be an option
        with pytest.raises(ValueError, match=f"`{option}` is fixed by the architecture"):
            make_downsampling({"name": "max", option: 2}, 2)
    with pytest.raises(ValueError, match="`trainable_p` is fixed by the kind 'pnorm'"):
        make_downsampling({"name": "pnorm", "trainable_p": True}, 2)


def test_invalid_option_values_fail_in_the_layer():
    with pytest.raises(ValueError, match="p"):
        make_downsampling({"name": "pnorm", "p": 0.5}, 2)


def test_unknown_kinds_are_rejected_with_the_known_kinds():
    for spec in ["median", "Max", {"name": "median"}, 42, ["max"]]:
        with pytest.raises(ValueError, match="Unknown downsampling kind") as error:
            make_downsampling(spec, 2)
        assert repr(spec) in str(error.value)
        for kind in KINDS:
            assert kind in str(error.value)


def test_mapping_without_a_name_is_rejected():
    for spec in [{"p": 3}, {"name": 3}]:
        with pytest.raises(ValueError, match="'name' key"):
            make_downsampling(spec, 2)


def test_none_is_not_a_spec():
    with pytest.raises(ValueError, match="spec=None"):
        make_downsampling(None, 2)


def test_callable_spec_receives_the_architecture_window():
    calls = []

    def my_pool(pool_size, strides, padding, name):
        calls.append((pool_size, strides, padding, name))
        return keras.layers.MaxPooling2D(pool_size, strides, padding, name=name)

    layer = make_downsampling(my_pool, 3, 2, "same", name="down2", filters=7)
    assert calls == [(3, 2, "same", "down2")]
    assert isinstance(layer, keras.layers.MaxPooling2D) and layer.name == "down2"


def test_layer_classes_work_as_callable_specs():
    layer = make_downsampling(keras.layers.AveragePooling2D, 3, 2, "same", name="down1")
    assert isinstance(layer, keras.layers.AveragePooling2D)
    assert layer.name == "down1" and layer.padding == "same"
    pnorm = make_downsampling(layers.PNormPooling2D, 2, name="down1")
    assert isinstance(pnorm, layers.PNormPooling2D) and pnorm.p == 2


def test_callable_spec_must_return_a_layer_with_the_given_name():
    with pytest.raises(ValueError, match="must return a Keras layer"):
        make_downsampling(lambda **kwargs: "max", 2, name="down1")
    with pytest.raises(ValueError, match="must name its layer 'down1'"):
        make_downsampling(lambda **kwargs: keras.layers.MaxPooling2D(), 2, name="down1")
