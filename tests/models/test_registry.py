"""The model registry: names, info, build, register, argument validation and minimum sizes."""

import dataclasses
import math

import keras
import numpy as np
import pytest

from kerascnn import models
from kerascnn.models import registry

ALL_CNN = [
    f"{prefix}_{base}"
    for prefix in ("model", "strided_cnn", "convpool_cnn", "all_cnn")
    for base in "abc"
]
EXPECTED_NAMES = sorted([*ALL_CNN, "lenet5", "lenet5_classic", "nin", "nin_mnist"])

# The papers' inputs.
PAPER_INPUTS = {
    **{name: (32, 32, 3) for name in ALL_CNN},
    "nin": (32, 32, 3),
    "nin_mnist": (28, 28, 1),
    "lenet5": (28, 28, 1),
    "lenet5_classic": (32, 32, 1),
}


# Spatial sizes through each architecture, written from the layer tables:
# 'valid' window k, stride s: floor((n - k) / s) + 1; 'same' stride s: ceil(n / s).
def _valid(n, k, s=1):
    return (n - k) // s + 1


def _same(n, s=1):
    return math.ceil(n / s)


def _sizes_lenet5(n):
    a = n  # conv1 5x5 'same'
    b = _valid(a, 2, 2)  # down1
    c = _valid(b, 5)  # conv2
    d = _valid(c, 2, 2)  # down2
    return [a, b, c, d]


def _sizes_lenet5_classic(n):
    if n < 28:  # smaller inputs are rejected by design: at most a 2-pixel border is added
        return [0]
    p = max(n, 32)  # 28..31 padded to 32
    a = _valid(p, 5)  # C1
    b = _valid(a, 2, 2)  # S2
    c = _valid(b, 5)  # C3
    d = _valid(c, 2, 2)  # S4
    e = _valid(d, 5)  # C5
    return [p, a, b, c, d, e]


def _sizes_all_cnn(n):
    a = _same(n, 2)  # stage 1 downsampling (3x3/2 'same' pool or strided conv)
    b = _same(a, 2)  # stage 2
    c = _valid(b, 3)  # head 3x3 'valid'
    return [a, b, c]


def _sizes_nin(n):
    a = _same(n, 2)
    b = _same(a, 2)
    return [a, b]


SIZE_RULES = {
    **{name: _sizes_all_cnn for name in ALL_CNN},
    "lenet5": _sizes_lenet5,
    "lenet5_classic": _sizes_lenet5_classic,
    "nin": _sizes_nin,
    "nin_mnist": _sizes_nin,
}


def _smallest_size(rule):
    return next(n for n in range(1, 100) if min(rule(n)) >= 1)


def test_names_lists_every_architecture_sorted():
    assert models.names() == EXPECTED_NAMES


def test_info_describes_the_paper_input():
    for name in EXPECTED_NAMES:
        model_info = models.info(name)
        assert isinstance(model_info, models.ModelInfo)
        assert model_info.name == name
        assert model_info.input_shape == PAPER_INPUTS[name], name
        assert model_info.builder is getattr(models, name)
        assert model_info.description
        assert model_info.pluggable_downsample == (not name.startswith("strided_cnn")), name


def test_model_info_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        models.info("lenet5").min_size = 3


def test_min_size_is_the_smallest_size_the_layer_table_allows():
    for name in EXPECTED_NAMES:
        assert models.info(name).min_size == _smallest_size(SIZE_RULES[name]), name


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_min_size_builds_and_one_less_is_rejected(name):
    model_info = models.info(name)
    size, channels = model_info.min_size, model_info.input_shape[-1]
    model = models.build(name, (size, size, channels), num_classes=3)
    assert model.output_shape == (None, 3)
    if size == 1:
        with pytest.raises(ValueError, match="input_shape"):
            models.build(name, (0, 0, channels), num_classes=3)
        return
    message = f"{name} needs inputs of at least {size}x{size}, got {size - 1}x{size - 1}"
    with pytest.raises(ValueError, match=message):
        models.build(name, (size - 1, size - 1, channels), num_classes=3)


@pytest.mark.parametrize("name", ["all_cnn_c", "lenet5"])
def test_each_spatial_dimension_is_checked(name):
    size = models.info(name).min_size
    with pytest.raises(ValueError, match=f"got {size}x{size - 1}"):
        models.build(name, (size, size - 1, 1), num_classes=10)


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="Unknown model") as error:
        models.build("resnet50", (32, 32, 3), 10)
    for name in EXPECTED_NAMES:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="lenet5_classic"):
        models.info("LeNet")


def test_build_names_the_model_and_defaults_to_the_paper_input():
    model = models.build("lenet5", None, num_classes=10)
    assert model.name == "lenet5"
    assert model.input_shape == (None, 28, 28, 1)


def test_build_forwards_options_to_the_builder():
    model = models.build("all_cnn_c", (9, 9, 3), 10, dropout_input=0.1, dropout=0.3)
    assert model.get_layer("drop_input").rate == pytest.approx(0.1)
    assert model.get_layer("drop1").rate == pytest.approx(0.3)
    assert model.get_layer("drop2").rate == pytest.approx(0.3)


def test_build_rejects_options_the_builder_does_not_take():
    with pytest.raises(ValueError, match="dropout_rate") as error:
        models.build("lenet5", (28, 28, 1), 10, dropout_rate=0.5)
    with pytest.raises(ValueError, match="dropout_input"):
        models.build("nin", (32, 32, 3), 10, dropout_input=0.2)
    assert "lenet5" in str(error.value)


def test_dropout_rates_are_validated():
    for rate in [-0.1, 1.0, "0.5", True, None]:
        with pytest.raises(ValueError, match=f"dropout={rate!r}"):
            models.build("all_cnn_a", (9, 9, 3), 10, dropout=rate)
        with pytest.raises(ValueError, match=f"dropout_input={rate!r}"):
            models.build("all_cnn_a", (9, 9, 3), 10, dropout_input=rate)
        with pytest.raises(ValueError, match=f"dropout={rate!r}"):
            models.build("nin", (8, 8, 3), 10, dropout=rate)


BAD_INPUT_SHAPES = [
    (32, 32),
    (32, 32, 3, 1),
    (0, 32, 3),
    (32, 32, 0),
    (-1, 32, 3),
    (32.0, 32, 3),
    (True, 32, 3),
    "32x32x3",
    32,
    (None, None, 3),
]


def test_input_shape_must_be_three_positive_ints():
    for name in EXPECTED_NAMES:
        for input_shape in BAD_INPUT_SHAPES:
            with pytest.raises(ValueError, match="Invalid value for argument `input_shape`"):
                models.build(name, input_shape, 10)


def test_num_classes_must_be_an_int_of_at_least_two():
    for name in EXPECTED_NAMES:
        for num_classes in [1, 0, -3, 2.0, True, "10", None]:
            with pytest.raises(ValueError, match=f"num_classes={num_classes!r}"):
                models.build(name, None, num_classes)


def test_sequences_and_numpy_integers_are_accepted():
    model = models.build("lenet5", [np.int64(28), np.int32(28), 1], np.int64(4))
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 4)
    omegaconf = pytest.importorskip("omegaconf")
    config = omegaconf.OmegaConf.create({"input_shape": [9, 9, 3], "downsample": {"name": "max"}})
    model = models.build("model_c", config.input_shape, 10, downsample=config.downsample)
    assert model.input_shape == (None, 9, 9, 3)


def test_two_classes_is_enough():
    assert models.build("lenet5", None, 2).output_shape == (None, 2)


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_register_adds_a_buildable_model(scratch_registry):
    @models.register("tiny", input_shape=(8, 8, 1), min_size=4, description="a test model")
    def tiny(input_shape=(8, 8, 1), num_classes=10, downsample=None, width=2):
        input_shape, num_classes = registry.check_build_args("tiny", input_shape, num_classes)
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(width, 3, name="conv1")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
        return keras.Model(inputs, outputs, name="tiny")

    assert "tiny" in models.names()
    assert models.info("tiny") == models.ModelInfo("tiny", tiny, (8, 8, 1), 4, "a test model")
    model = models.build("tiny", None, 3, width=5)
    assert model.get_layer("conv1").filters == 5
    with pytest.raises(ValueError, match="tiny needs inputs of at least 4x4, got 3x3"):
        models.build("tiny", (3, 3, 1), 3)
    with pytest.raises(ValueError, match="already registered"):
        models.register("tiny", input_shape=(8, 8, 1), min_size=4)


def test_register_validates_its_arguments(scratch_registry):
    cases = [
        ({"name": "", "input_shape": (8, 8, 1), "min_size": 1}, "name"),
        ({"name": 3, "input_shape": (8, 8, 1), "min_size": 1}, "name"),
        ({"name": "x", "input_shape": (8, 8), "min_size": 1}, "input_shape"),
        ({"name": "x", "input_shape": (8, 8, 1), "min_size": 0}, "min_size"),
        ({"name": "x", "input_shape": (8, 8, 1), "min_size": 2.5}, "min_size"),
    ]
    for kwargs, argument in cases:
        with pytest.raises(ValueError, match=f"argument `{argument}`"):
            models.register(**kwargs)
    assert "x" not in models.names()


@pytest.mark.parametrize("name", models.names())
def test_default_downsample_names_what_none_builds(name):
    model_info = models.info(name)
    small = (model_info.min_size + 4, model_info.min_size + 4, model_info.input_shape[-1])
    by_default = models.build(name, small, 10)
    if model_info.default_downsample is None:
        assert not model_info.pluggable_downsample
        return
    by_name = models.build(name, small, 10, downsample=model_info.default_downsample)
    assert type(by_default.get_layer("down1")) is type(by_name.get_layer("down1"))
    assert by_default.count_params() == by_name.count_params()


def test_all_cnn_class_activation_is_the_papers_relu_unless_told():
    paper = models.build("all_cnn_c", (9, 9, 3), 10)
    linear = models.build("all_cnn_c", (9, 9, 3), 10, class_activation=None)
    assert paper.get_layer("head_conv3").activation is keras.activations.relu
    assert linear.get_layer("head_conv3").activation is keras.activations.linear
    assert paper.count_params() == linear.count_params()
