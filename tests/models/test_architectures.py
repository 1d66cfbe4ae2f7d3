"""The architectures against the papers' tables: parameter counts, structure, downsample specs."""

import keras
import numpy as np
import pytest

from kerascnn import layers, models
from kerascnn.models import KINDS


# Parameter arithmetic, from the layer definitions.
def conv(k, c_in, c_out):
    """k x k convolution with bias."""
    return k * k * c_in * c_out + c_out


def dense(n_in, n_out):
    return n_in * n_out + n_out


def mlpconv(k, c_in, widths):
    """k x k convolution then 1x1 convolutions."""
    total, channels = 0, c_in
    for index, width in enumerate(widths):
        total += conv(k if index == 0 else 1, channels, width)
        channels = width
    return total


def subsample(channels):
    """LeNet-5 S-layer: one coefficient and one bias per map."""
    return 2 * channels


# fmt: off
# LeNet-5's C3 connection table, LeCun et al. 1998, Table I (input maps of each output map).
TABLE_I = [
    {0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 5}, {0, 4, 5}, {0, 1, 5},
    {0, 1, 2, 3}, {1, 2, 3, 4}, {2, 3, 4, 5}, {0, 3, 4, 5}, {0, 1, 4, 5}, {0, 1, 2, 5},
    {0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5},
    {0, 1, 2, 3, 4, 5},
]

# All-CNN: the convolutions (k, c_in, c_out) of each model for 32x32x3 inputs and 10 classes
# (Springenberg et al. 2014, Tables 1 and 2). Pooling has no parameters; strided convs have
# the parameters of the conv they replace; all_cnn's downsampling convs are 3x3 (96, 192).
HEAD = [(3, 192, 192), (1, 192, 192), (1, 192, 10)]
ALL_CNN_TABLES = {
    "model_a": [(5, 3, 96), (5, 96, 192), *HEAD],
    "strided_cnn_a": [(5, 3, 96), (5, 96, 192), *HEAD],
    "convpool_cnn_a": [(5, 3, 96), (3, 96, 96), (5, 96, 192), (3, 192, 192), *HEAD],
    "all_cnn_a": [(5, 3, 96), (3, 96, 96), (5, 96, 192), (3, 192, 192), *HEAD],
    "model_b": [(5, 3, 96), (1, 96, 96), (5, 96, 192), (1, 192, 192), *HEAD],
    "strided_cnn_b": [(5, 3, 96), (1, 96, 96), (5, 96, 192), (1, 192, 192), *HEAD],
    "convpool_cnn_b": [
        (5, 3, 96), (1, 96, 96), (3, 96, 96), (5, 96, 192), (1, 192, 192), (3, 192, 192), *HEAD
    ],
    "all_cnn_b": [
        (5, 3, 96), (1, 96, 96), (3, 96, 96), (5, 96, 192), (1, 192, 192), (3, 192, 192), *HEAD
    ],
    "model_c": [(3, 3, 96), (3, 96, 96), (3, 96, 192), (3, 192, 192), *HEAD],
    "strided_cnn_c": [(3, 3, 96), (3, 96, 96), (3, 96, 192), (3, 192, 192), *HEAD],
    "convpool_cnn_c": [
        (3, 3, 96), (3, 96, 96), (3, 96, 96), (3, 96, 192), (3, 192, 192), (3, 192, 192), *HEAD
    ],
    "all_cnn_c": [
        (3, 3, 96), (3, 96, 96), (3, 96, 96), (3, 96, 192), (3, 192, 192), (3, 192, 192), *HEAD
    ],
}

EXPECTED_PARAMS = {
    **{name: sum(conv(*c) for c in table) for name, table in ALL_CNN_TABLES.items()},
    # lenet5 on 28x28x1: 'same' conv1 keeps 28, pool 14, valid conv2 10, pool 5 -> 5*5*16.
    "lenet5": conv(5, 1, 6) + conv(5, 6, 16) + dense(5 * 5 * 16, 120) + dense(120, 84)
    + dense(84, 10),
    # lenet5_classic on 32x32x1: C1, S2, C3 (Table I), S4, C5, F6, output.
    "lenet5_classic": conv(5, 1, 6) + subsample(6)
    + sum(len(maps) * 5 * 5 for maps in TABLE_I) + 16
    + subsample(16) + conv(5, 16, 120) + dense(120, 84) + dense(84, 10),
    "nin": mlpconv(5, 3, [192, 160, 96]) + mlpconv(5, 96, [192, 192, 192])
    + mlpconv(3, 192, [192, 192, 10]),
    "nin_mnist": mlpconv(5, 1, [96, 64, 48]) + mlpconv(5, 48, [128, 96, 48])
    + mlpconv(5, 48, [128, 96, 10]),
}

# fmt: on

PLUGGABLE = [name for name in models.names() if models.info(name).pluggable_downsample]
STRIDED = [name for name in models.names() if name.startswith("strided_cnn")]


def test_the_published_lenet5_count_is_derived():
    assert EXPECTED_PARAMS["lenet5_classic"] == 60_850  # LeCun et al. 1998, Section II.B
    assert EXPECTED_PARAMS["all_cnn_c"] == EXPECTED_PARAMS["convpool_cnn_c"]


def test_every_registered_model_has_a_derived_count():
    assert sorted(EXPECTED_PARAMS) == models.names()


def test_lenet5_classic_layer_by_layer():
    model = models.lenet5_classic()
    expected = {
        "conv1": conv(5, 1, 6),
        "down1": 12,
        "conv2": 1516,
        "down2": 32,
        "conv3": conv(5, 16, 120),
        "fc1": dense(120, 84),
        "logits": dense(84, 10),
    }
    for name, count in expected.items():
        assert model.get_layer(name).count_params() == count, name
    assert isinstance(model.get_layer("down1"), layers.TrainableSubsampling2D)
    assert isinstance(model.get_layer("conv2"), layers.PartialConv2D)
    assert model.get_layer("conv3").output.shape == (None, 1, 1, 120)


def test_lenet5_classic_c3_follows_table_i():
    model = models.lenet5_classic()
    c3 = model.get_layer("conv2")
    c3.bias.assign(np.zeros(16, "float32"))
    rng = np.random.default_rng(0)
    for i in range(6):
        x = np.zeros((1, 14, 14, 6), "float32")
        x[..., i] = rng.uniform(0.5, 1.0, size=(14, 14))
        y = keras.ops.convert_to_numpy(c3(x))
        touched = {j for j in range(16) if np.abs(y[..., j]).max() > 0}
        assert touched == {j for j, maps in enumerate(TABLE_I) if i in maps}, i


def test_scaled_tanh_is_lecuns_squashing_function():
    a = np.linspace(-4, 4, 41).astype("float32")
    y = keras.ops.convert_to_numpy(models.scaled_tanh(a))
    np.testing.assert_allclose(y, 1.7159 * np.tanh(2 * a / 3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(models.scaled_tanh(np.array([1.0, -1.0])), [1, -1], atol=1e-3)


def test_lenet5_classic_uses_scaled_tanh_throughout():
    model = models.lenet5_classic()
    for name in ("conv1", "down1", "conv2", "down2", "conv3", "fc1"):
        assert model.get_layer(name).activation is models.scaled_tanh, name
    conv = models.lenet5_classic(downsample="conv")
    assert conv.get_layer("down1").activation is models.scaled_tanh
    relu = models.lenet5_classic(downsample={"name": "conv", "activation": "relu"})
    assert relu.get_layer("down1").activation is keras.activations.relu


def test_lenet5_classic_pads_small_inputs_to_32():
    for size, pads in [(28, ((2, 2), (2, 2))), (31, ((0, 1), (0, 1)))]:
        model = models.lenet5_classic((size, size, 1))
        assert model.get_layer("pad").output.shape == (None, 32, 32, 1)
        assert tuple(map(tuple, model.get_layer("pad").padding)) == pads
        assert model.count_params() == EXPECTED_PARAMS["lenet5_classic"]
    model = models.lenet5_classic((28, 36, 1))
    assert model.get_layer("pad").output.shape == (None, 32, 36, 1)
    names = [layer.name for layer in models.lenet5_classic((32, 32, 1)).layers]
    assert "pad" not in names


def test_lenet5_modern_layers():
    model = models.lenet5()
    assert model.get_layer("conv1").output.shape == (None, 28, 28, 6)
    assert model.get_layer("down2").output.shape == (None, 5, 5, 16)
    for name in ("conv1", "conv2", "fc1", "fc2"):
        assert model.get_layer(name).activation is keras.activations.relu, name


@pytest.mark.parametrize("base", "abc")
def test_all_cnn_structure(base):
    model_x = models.build(f"model_{base}", None, 10)
    strided = models.build(f"strided_cnn_{base}", None, 10)
    convpool = models.build(f"convpool_cnn_{base}", None, 10)
    all_cnn = models.build(f"all_cnn_{base}", None, 10)
    for model in (model_x, strided, convpool, all_cnn):
        assert model.get_layer("down1").output.shape[1:3] == (16, 16)
        assert model.get_layer("down2").output.shape[1:3] == (8, 8)
        assert model.get_layer("head_conv1").output.shape == (None, 6, 6, 192)
        assert model.get_layer("head_conv3").activation is keras.activations.relu
        assert model.get_layer("drop_input").rate == pytest.approx(0.2)
        assert model.get_layer("drop1").rate == pytest.approx(0.5)
        assert model.get_layer("drop2").rate == pytest.approx(0.5)
        # dropout right after each downsampling stage
        assert model.get_layer("drop1").input is model.get_layer("down1").output
    for stage, filters in ((1, 96), (2, 192)):
        pool = model_x.get_layer(f"down{stage}")
        assert isinstance(pool, keras.layers.MaxPooling2D)
        assert (pool.pool_size, pool.strides, pool.padding) == ((3, 3), (2, 2), "same")
        assert isinstance(convpool.get_layer(f"down{stage}"), keras.layers.MaxPooling2D)
        strided_conv = strided.get_layer(f"down{stage}")
        assert type(strided_conv) is keras.layers.Conv2D
        assert strided_conv.strides == (2, 2) and strided_conv.filters == filters
        learned = all_cnn.get_layer(f"down{stage}")
        assert isinstance(learned, layers.StridedConvDownsampling2D)
        assert learned.filters == filters and learned.pool_size == (3, 3)
        assert learned.strides == (2, 2) and learned.padding == "same"
    n_convs = {"a": 2, "b": 4, "c": 4}[base]
    for model, extra in ((model_x, 0), (convpool, 2), (all_cnn, 0)):
        convs = [layer for layer in model.layers if layer.name.startswith("conv")]
        assert len(convs) == n_convs + extra
        assert all(layer.strides == (1, 1) for layer in convs)


def test_strided_cnn_rejects_a_downsample_spec():
    assert STRIDED == ["strided_cnn_a", "strided_cnn_b", "strided_cnn_c"]
    for name in STRIDED:
        message = f"{name} has no pooling stage; downsample must be None"
        with pytest.raises(ValueError, match=message):
            models.build(name, None, 10, downsample="max")
        with pytest.raises(ValueError, match=message):
            getattr(models, name)(downsample={"name": "pnorm"})


@pytest.mark.parametrize("name", ["nin", "nin_mnist"])
def test_nin_structure(name):
    model = models.build(name, None, 10)
    size = models.info(name).input_shape[0]
    for stage in (1, 2):
        pool = model.get_layer(f"down{stage}")
        assert isinstance(pool, keras.layers.MaxPooling2D)
        assert (pool.pool_size, pool.strides, pool.padding) == ((3, 3), (2, 2), "same")
        assert model.get_layer(f"drop{stage}").rate == pytest.approx(0.5)
    assert model.get_layer("down2").output.shape[1:3] == (size // 4, size // 4)
    block = model.get_layer("mlpconv3")
    assert isinstance(block, layers.MLPConv2D)
    assert block.filters[-1] == 10 and block.activation is keras.activations.relu
    assert model.get_layer("mlpconv3").output.shape == (None, size // 4, size // 4, 10)


@pytest.mark.parametrize("name", PLUGGABLE)
def test_every_downsample_spec_replaces_every_pooling_stage(name):
    model_info = models.info(name)
    size, channels = model_info.min_size, model_info.input_shape[-1]
    size = max(size, 4)
    expected = {
        "max": keras.layers.MaxPooling2D,
        "mean": keras.layers.AveragePooling2D,
        "pnorm": layers.PNormPooling2D,
        "pnorm_learned": layers.PNormPooling2D,
        "conv": layers.StridedConvDownsampling2D,
        "subsample": layers.TrainableSubsampling2D,
        "mlp": layers.MLPPooling2D,
    }
    assert set(expected) == set(KINDS)  # a new kind gets its row here
    for kind in KINDS:
        model = models.build(name, (size, size, channels), 3, downsample=kind)
        downs = [layer for layer in model.layers if layer.name.startswith("down")]
        assert [layer.name for layer in downs] == ["down1", "down2"], kind
        for layer in downs:
            assert type(layer) is expected[kind], (kind, layer.name)
            if kind.startswith("pnorm"):
                assert layer.trainable_p == (kind == "pnorm_learned")
        assert model.output_shape == (None, 3)
    model = models.build(name, (size, size, channels), 3, downsample={"name": "pnorm", "p": 3})
    assert model.get_layer("down1").p == 3 and model.get_layer("down2").p == 3


def test_callable_spec_plugs_a_custom_layer_in():
    calls = []

    def my_pool(pool_size, strides, padding, name):
        calls.append((pool_size, strides, padding, name))
        return keras.layers.AveragePooling2D(pool_size, strides, padding, name=name)

    model = models.build("all_cnn_c", (9, 9, 3), 10, downsample=my_pool)
    assert calls == [(3, 2, "same", "down1"), (3, 2, "same", "down2")]
    assert isinstance(model.get_layer("down2"), keras.layers.AveragePooling2D)
    models.build("lenet5", None, 10, downsample=my_pool)
    assert calls[-1] == (2, 2, "valid", "down2")


def test_unknown_spec_is_rejected_by_the_builders():
    for name in ("lenet5", "lenet5_classic", "model_a", "all_cnn_c", "nin"):
        with pytest.raises(ValueError, match="Unknown downsampling kind"):
            models.build(name, None, 10, downsample="median")


def test_conv_downsampling_of_all_cnn_uses_the_model_initializer():
    model = models.all_cnn_c((9, 9, 3), kernel_initializer="glorot_uniform")
    down = model.get_layer("down1")
    assert isinstance(down.kernel_initializer, keras.initializers.GlorotUniform)
    assert isinstance(model.get_layer("conv1").kernel_initializer, keras.initializers.GlorotUniform)
    default = models.all_cnn_c((9, 9, 3))
    assert isinstance(default.get_layer("conv1").kernel_initializer, keras.initializers.HeNormal)
    assert isinstance(default.get_layer("down2").kernel_initializer, keras.initializers.HeNormal)


def test_an_unseeded_initializer_instance_gives_distinct_kernels():
    model = models.all_cnn_c((9, 9, 3), kernel_initializer=keras.initializers.HeNormal())
    # conv4 and head_conv1 are both 3x3 convolutions from 192 to 192 channels
    a = keras.ops.convert_to_numpy(model.get_layer("conv4").kernel)
    b = keras.ops.convert_to_numpy(model.get_layer("head_conv1").kernel)
    assert a.shape == b.shape
    assert not np.allclose(a, b)
    assert np.std(a) == pytest.approx(np.sqrt(2 / (9 * 192)), rel=0.1)


@pytest.mark.parametrize("name", models.names())
def test_paper_model_parameter_count_and_naming_conventions(name):
    model_info = models.info(name)
    model = models.build(name, None, 10)
    assert model.count_params() == EXPECTED_PARAMS[name]
    assert model.name == name
    assert [layer.name for layer in model.layers if layer.name.startswith("down")] == [
        "down1",
        "down2",
    ]
    output = model.layers[-1]
    assert output.name == "predictions" and output is model.get_layer("predictions")
    assert output.activation is keras.activations.softmax
    # the first layer with a 4D kernel is the first convolution, applied to the image
    first = next(layer for layer in model.layers if any(len(w.shape) == 4 for w in layer.weights))
    kernel = next(w for w in first.weights if len(w.shape) == 4)
    assert kernel.shape[2] == model_info.input_shape[-1]
    assert first.name in ("conv1", "mlpconv1", "down1")


def test_mixed_precision_keeps_float32_probabilities():
    keras.config.set_dtype_policy("mixed_float16")
    for name in ("lenet5_classic", "all_cnn_a", "nin_mnist"):
        model_info = models.info(name)
        size = model_info.min_size if model_info.min_size > 1 else 8
        model = models.build(name, (size, size, model_info.input_shape[-1]), 10)
        assert model.get_layer("logits" if name.startswith("lenet") else "gap").compute_dtype == (
            "float16"
        )
        x = np.random.default_rng(0).normal(size=(2, size, size, model_info.input_shape[-1]))
        y = model(x.astype("float32"))
        assert y.dtype == "float32"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(y).sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("name", ["all_cnn_c", "strided_cnn_c", "nin"])
def test_class_maps_start_alive_and_equal(name):
    """Zero class kernel and bias 3: every class map is 3 everywhere, the prediction uniform."""
    model = models.build(name, (12, 12, 3), 10)
    conv = (
        model.get_layer("mlpconv3").convs[-1] if name == "nin" else model.get_layer("head_conv3")
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(conv.kernel), 0.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(conv.bias), 3.0)
    x = np.random.default_rng(0).uniform(size=(4, 12, 12, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), 0.1, rtol=1e-6)


@pytest.mark.parametrize("name", ["all_cnn_c", "nin"])
def test_class_maps_can_start_like_every_other_convolution(name):
    model = models.build(name, (12, 12, 3), 10, class_kernel_initializer=None, class_bias=0)
    conv = (
        model.get_layer("mlpconv3").convs[-1] if name == "nin" else model.get_layer("head_conv3")
    )
    kernel = keras.ops.convert_to_numpy(conv.kernel)
    fan_in = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    assert np.std(kernel) == pytest.approx(np.sqrt(2 / fan_in), rel=0.25)  # He normal
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(conv.bias), 0.0)


@pytest.mark.parametrize("value", ["1", float("nan"), True, None])
def test_a_bad_class_bias_is_refused_by_name(value):
    for name in ("all_cnn_c", "nin"):
        with pytest.raises(ValueError, match="class_bias"):
            models.build(name, (12, 12, 3), 10, class_bias=value)


@pytest.mark.slow
def test_all_cnn_c_with_relu_class_maps_learns_digits():
    """The paper's head (ReLU class maps) leaves chance on a short digits run: loss below
    ln(10) and test accuracy well above 0.1. With the class convolution initialised like the
    others the same run stayed at loss ln(10) = 2.3026 and accuracy 0.10."""
    from kerascnn.data import load_arrays, make_pipelines

    keras.utils.set_random_seed(0)
    pipes = make_pipelines(load_arrays("digits"), image_size=12, batch_size=32, val_split=0.0,
                           normalize="standardize", seed=0, limit=640)
    model = models.build("all_cnn_c", pipes.input_shape, 10, dropout_input=0.0)
    model.compile(keras.optimizers.Adam(0.002), "sparse_categorical_crossentropy")
    history = model.fit(pipes.train, epochs=3, verbose=0)
    accuracy = np.mean(np.argmax(model.predict(pipes.x_test, verbose=0), -1) == pipes.y_test)
    assert history.history["loss"][-1] < np.log(10) - 0.3
    assert accuracy > 0.4
