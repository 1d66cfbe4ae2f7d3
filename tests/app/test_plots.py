"""Per-run pictures: each function draws what it is given and writes a readable PNG."""

import keras
import matplotlib.image
import numpy as np
import pytest

from kerascnn.app.tracking import model_plots, plots


def _tiny_model(channels=3, with_down=True):
    inputs = keras.Input((12, 12, channels))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="down1" if with_down else "pool1")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", name="conv2")(x)
    x = keras.layers.AveragePooling2D(2, name="down2" if with_down else "pool2")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def _check_png(fig, tmp_path, name):
    width, height = fig.get_size_inches()
    path = plots.save_figure(fig, tmp_path / "sub" / f"{name}.png")
    assert path.is_file()
    assert path.stat().st_size > 3000
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (round(height * 100), round(width * 100))
    assert pixels.std() > 0  # not a blank canvas
    return path


class _Composite(keras.layers.Layer):
    """A block holding its convolutions in a list, like an MLPConv2D block."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.convs = [
            keras.layers.Conv2D(6, 3, padding="same", name="inner_conv"),
            keras.layers.Conv2D(2, 1, name="inner_mlp"),
        ]

    def call(self, x):
        for conv in self.convs:
            x = conv(x)
        return x


class _LearnedP(keras.layers.Layer):
    """An identity layer that reports a p per channel."""

    def __init__(self, p, **kwargs):
        super().__init__(**kwargs)
        self.p = np.asarray(p, dtype="float32")
        self.trainable_p = True  # what every layer that learns p says

    def p_values(self):
        return self.p

    def call(self, x):
        return x


def test_learning_curves_draw_history(tmp_path):
    history = {
        "loss": [1.2, 0.8, 0.5, 0.4],
        "val_loss": [1.3, 0.9, 0.7, 0.65],
        "accuracy": [0.5, 0.7, 0.8, 0.9],
        "val_accuracy": [0.45, 0.6, 0.75, 0.8],
    }
    fig = plots.learning_curves(history, run_name="lenet5-pnorm-digits")
    loss_ax, acc_ax = fig.axes[:2]
    for ax, base in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        assert ax.get_title() == base
        assert ax.get_xlabel() == "epoch"
        assert ax.get_ylabel() == base
        lines = {line.get_label(): line for line in ax.get_lines()}
        np.testing.assert_allclose(lines["train"].get_ydata(), history[base])
        np.testing.assert_allclose(lines["validation"].get_ydata(), history[f"val_{base}"])
        np.testing.assert_array_equal(lines["train"].get_xdata(), [1, 2, 3, 4])
        assert ax.get_legend() is not None
    assert "lenet5-pnorm-digits" in fig.get_suptitle()
    _check_png(fig, tmp_path, "curves")


def test_learning_curves_without_validation_or_accuracy():
    fig = plots.learning_curves({"loss": [3.0, 2.0]})
    assert len(fig.axes) == 1
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train"]
    with pytest.raises(ValueError, match="history"):
        plots.learning_curves({"lr": [0.1]})


def test_confusion_counts_match_a_hand_count():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 4, size=200))
    expected = np.zeros((4, 4), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        expected[t, p] += 1
    np.testing.assert_array_equal(plots.confusion_counts(y_true, y_pred, 4), expected)
    # scores and one-hot targets are arg-maxed
    scores = np.eye(4)[y_pred] * 0.9 + 0.025
    np.testing.assert_array_equal(plots.confusion_counts(np.eye(4)[y_true], scores, 4), expected)


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [([0, 1, 2], [0, 1], "y_pred"), ([0, 5], [0, 1], "y_true"), ([0, 1], [-1, 1], "y_pred")],
)
def test_confusion_counts_reject_bad_labels(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        plots.confusion_counts(y_true, y_pred, 3)


def test_confusion_matrix_figure(tmp_path):
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 5, size=150)
    y_pred = np.where(rng.random(150) < 0.6, y_true, rng.integers(0, 5, size=150))
    names = ["zero", "one", "two", "three", "four"]
    fig = plots.confusion_matrix(y_true, y_pred, names, run_name="run-a")
    ax = fig.axes[0]
    drawn = np.asarray(ax.images[0].get_array())
    expected = np.array([[np.sum((y_true == i) & (y_pred == j)) for j in range(5)]
                         for i in range(5)])
    np.testing.assert_array_equal(drawn, expected)
    accuracy = np.mean(y_true == y_pred)
    assert f"{accuracy:.2%}" in ax.get_title()
    assert "run-a" in ax.get_title()
    assert ax.get_xlabel() == "predicted class"
    assert ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    annotations = [int(t.get_text()) for t in ax.texts]
    assert annotations == expected.ravel().tolist()
    assert len(fig.axes) == 2  # the matrix and its colour bar
    _check_png(fig, tmp_path, "confusion")


def test_confusion_matrix_does_not_annotate_many_classes():
    y = np.arange(30)
    fig = plots.confusion_matrix(y, y, [str(i) for i in range(30)])
    assert len(fig.axes[0].texts) == 0
    assert "100.00%" in fig.axes[0].get_title()


def test_first_layer_filters_rgb(tmp_path):
    model = _tiny_model(channels=3)
    fig = model_plots.first_layer_filters(model, run_name="run-b")
    tiles = _image_axes(fig)
    assert len(tiles) == 4  # one per filter of conv1
    kernel = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel)
    first = kernel[..., 0]
    expected = (first - first.min()) / (first.max() - first.min())
    np.testing.assert_allclose(np.asarray(tiles[0].images[0].get_array()), expected, rtol=1e-6)
    assert "conv1" in fig.get_suptitle() and "run-b" in fig.get_suptitle()
    _check_png(fig, tmp_path, "filters")


def test_first_layer_filters_grayscale_mean_over_inputs():
    inputs = keras.Input((8, 8, 2))
    outputs = keras.layers.Conv2D(7, 3, name="c")(inputs)
    model = keras.Model(inputs, outputs)
    fig = model_plots.first_layer_filters(model)
    tiles = _image_axes(fig)
    assert len(tiles) == 7
    kernel = keras.ops.convert_to_numpy(model.get_layer("c").kernel)
    for index, ax in enumerate(tiles):
        drawn = np.asarray(ax.images[0].get_array())
        np.testing.assert_allclose(drawn, (kernel[..., 0, index] + kernel[..., 1, index]) / 2,
                                   rtol=1e-5, atol=1e-7)


def test_first_layer_filters_inside_a_composite_layer():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Dense(1, name="pointwise")(inputs)  # 2D kernel: not a convolution
    outputs = _Composite(name="block1")(x)
    fig = model_plots.first_layer_filters(keras.Model(inputs, outputs))
    assert len(_image_axes(fig)) == 6
    assert "inner_conv" in fig.get_suptitle()


def test_first_layer_filters_none_without_convolution():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert model_plots.first_layer_filters(model) is None


def test_feature_maps_show_each_downsampling_stage(tmp_path):
    model = _tiny_model(channels=3)
    image = np.random.default_rng(2).random((12, 12, 3)).astype("float32")
    fig = model_plots.feature_maps(model, image, run_name="run-c")
    # the input, 4 channels after down1, 5 channels after down2
    assert len(_image_axes(fig)) == 1 + 4 + 5

    x = image[None]
    expected = {}
    for name in ("conv1", "down1", "conv2", "down2"):
        x = keras.ops.convert_to_numpy(model.get_layer(name)(x))
        expected[name] = x[0]
    rows = {}
    for ax in fig.axes:
        label = ax.get_ylabel()
        if label:
            rows[label.split("\n")[0]] = (ax, label)
    assert set(rows) == {"input", "down1", "down2"}
    assert rows["down1"][1].endswith("6x6x4")
    assert rows["down2"][1].endswith("3x3x5")
    np.testing.assert_allclose(np.asarray(rows["down1"][0].images[0].get_array()),
                               expected["down1"][..., 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(rows["down2"][0].images[0].get_array()),
                               expected["down2"][..., 0], rtol=1e-4, atol=1e-5)
    assert "run-c" in fig.get_suptitle()
    _check_png(fig, tmp_path, "features")


def test_feature_maps_limit_channels_and_need_down_layers():
    inputs = keras.Input((6, 6, 1))
    outputs = keras.layers.MaxPooling2D(name="down1")(keras.layers.Conv2D(20, 1)(inputs))
    fig = model_plots.feature_maps(keras.Model(inputs, outputs), np.ones((6, 6, 1)))
    assert len(_image_axes(fig)) == 1 + 16
    assert model_plots.feature_maps(_tiny_model(with_down=False), np.ones((12, 12, 3))) is None
    with pytest.raises(ValueError, match="image"):
        model_plots.feature_maps(_tiny_model(), np.ones((1, 12, 12, 3)))


def test_learned_p_none_without_learned_p():
    assert model_plots.learned_p(_tiny_model()) is None


def test_learned_p_bars(tmp_path):
    p = [1.0, 2.5, 4.0, 1.5]
    inputs = keras.Input((8, 8, 4))
    x = _LearnedP(p, name="pool_learned")(inputs)
    outputs = _LearnedP([3.0, 3.0], name="second")(x)
    fig = model_plots.learned_p(keras.Model(inputs, outputs), run_name="run-d")
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], p)
    assert ax.get_xlabel() == "channel" and ax.get_ylabel() == "p"
    assert "pool_learned" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"mean p = {np.mean(p):.3g}" in legend
    assert any(abs(line.get_ydata()[0] - 1.0) < 1e-12 for line in ax.get_lines())
    assert "run-d" in fig.get_suptitle()
    _check_png(fig, tmp_path, "p")


def test_metric_curves_overlay_runs(tmp_path):
    curves = {"a": ([0, 1, 2], [0.5, 0.6, 0.7]), "b": ([0, 1], [0.4, 0.8])}
    fig = plots.metric_curves(curves, "val_accuracy", title="sweep")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"a", "b"}
    np.testing.assert_allclose(lines["b"].get_xdata(), [1, 2])
    np.testing.assert_allclose(lines["b"].get_ydata(), [0.4, 0.8])
    assert ax.get_title() == "sweep" and ax.get_ylabel() == "val_accuracy"
    _check_png(fig, tmp_path, "overlay")


def test_learned_p_leaves_out_a_fixed_p():
    from kerascnn.layers import PNormPooling2D

    def model_with(trainable_p):
        inputs = keras.Input((8, 8, 3))
        outputs = PNormPooling2D(2, p=3, trainable_p=trainable_p, name="down1")(inputs)
        return keras.Model(inputs, outputs)

    assert model_plots.learned_p(model_with(False)) is None
    assert model_plots.learned_p(model_with(True)) is not None
