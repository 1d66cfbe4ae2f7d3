"""The real config: every option of every group composes and validates; bad values are
rejected with a message naming the setting and the value."""

from __future__ import annotations

import math

import keras
import pytest
from hydra.errors import ConfigCompositionException

from kerascnn import models
from kerascnn.app import schedules
from kerascnn.app.config import ConfigError, validate
from kerascnn.app.settings import check_settings
from tests.helpers.app_config import CONF_DIR, compose_config

# The embedded digits, a handful of them: the model is built in a second.
SMALL = ["data.limit=20", "trainer.batch_size=8"]
GROUPS = ["model", "downsample", "data", "optimizer", "schedule", "trainer", "tracking",
          "experiment"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_composes_and_validates(group, option):
    cfg = compose_config(f"{group}={option}")
    conf = validate(cfg)
    if group in ("data", "optimizer", "schedule"):
        assert cfg[group].name == option  # every group's config names itself
    if group in ("model", "downsample"):  # or, for a preset, the registered name it varies
        assert option.startswith(cfg[group].name)
    assert conf.trainer.epochs >= 1


def test_one_model_file_per_registered_model():
    assert set(models.names()) <= set(_options("model"))
    for option in _options("model"):  # presets (all_cnn_c_linear) build a registered model
        assert compose_config(f"model={option}").model.name in models.names()


def test_downsample_group_is_the_design_vocabulary():
    vocabulary = {"max", "mean", "pnorm", "pnorm_learned", "conv", "subsample", "mlp"}
    assert vocabulary == set(models.KINDS)  # DESIGN.md's vocabulary is the factory's
    assert vocabulary <= set(_options("downsample"))
    for option in _options("downsample"):  # presets (pnorm3, pnorm5) name a kind of it
        assert compose_config(f"downsample={option}").downsample.name in vocabulary


def test_defaults_are_lenet5_on_digits_with_the_models_own_downsampling():
    cfg = compose_config()
    assert (cfg.model.name, cfg.data.name, cfg.downsample) == ("lenet5", "digits", None)


def test_paper_experiment_all_cnn_c():
    cfg = compose_config("experiment=all_cnn_c_cifar10")
    assert cfg.model.name == "all_cnn_c" and cfg.data.name == "cifar10"
    assert cfg.trainer.epochs == 350
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.momentum == 0.9
    assert cfg.optimizer.weight_decay == 0.001
    assert list(cfg.schedule.milestones) == [200, 250, 300] and cfg.schedule.factor == 0.1


@pytest.mark.parametrize("value,expected", [("3", 3.0), ("inf", math.inf), ("1", 1.0)])
def test_p_accepts_numbers_and_inf(value, expected):
    cfg = compose_config("downsample=pnorm", f"downsample.p={value}")
    assert validate(cfg).downsample["p"] == expected


@pytest.mark.parametrize("override,message", [
    ("downsample.p=0.5", "Invalid value for `downsample.p`. Expected a number >= 1 or inf. "
                         "Received: downsample.p=0.5"),
    ("downsample.p=nan", "Received: downsample.p=nan"),
    ("downsample.p=abc", "Received: downsample.p='abc'"),
    ("downsample.p=true", "Received: downsample.p=True"),
    ("downsample.name=median", "Unknown downsampling kind in downsample={'name': 'median'"),
    ("+downsample.depthwise=true", "`downsample.depthwise` is not an option of this kind"),
])
def test_the_layer_checks_its_options_and_the_app_names_the_key(override, message):
    """The downsampling options are the layer's to check: the model's build refuses them (the
    digits are small), with the layer's message naming the config key."""
    from kerascnn.app.build import prepare

    with pytest.raises(ConfigError) as info:
        prepare(check_settings(compose_config("downsample=pnorm", override, *SMALL)))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("override,message", [
    ("trainer.batch_size=0", "Invalid value for `trainer.batch_size`. Expected an integer >= 1. "
                             "Received: trainer.batch_size=0"),
    ("data.val_split=1.0", "Invalid value for `data.val_split`. Expected a fraction in [0, 1). "
                           "Received: data.val_split=1.0"),
    ("data.limit=0", "Received: data.limit=0"),
    ("data.normalize=zscore", "Received: data.normalize='zscore'"),
])
def test_the_data_library_checks_before_loading_and_the_app_names_the_key(override, message):
    """The data pipeline's arguments fail in the settings check, before any data is loaded
    (the data path does not exist), with the library's message naming the config key."""
    with pytest.raises(ConfigError) as info:
        check_settings(compose_config(override, "data=mnist", "data.path=/no/such/dir"))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("override,key,nearest", [
    ("+trainer.foo=1", "trainer.foo", "trainer."),
    ("+trainer.epoch=3", "trainer.epoch", "trainer.epochs"),
    ("+data.val_spilt=0.2", "data.val_spilt", "data.val_split"),
    ("+optimizer.momentun=0.5", "optimizer.momentun", "optimizer.momentum"),
    ("+schedule.warmup=2", "schedule.warmup", "schedule.warmup_epochs"),
    ("+tracking.experiments=x", "tracking.experiments", "tracking.experiment"),
    ("+trainers.epochs=3", "trainers", "trainer"),
])
def test_a_key_the_app_does_not_read_is_refused_naming_the_nearest(override, key, nearest):
    import difflib

    overrides = ["optimizer=sgd", override] if "momentun" in override else [override]
    with pytest.raises(ConfigError) as info:
        check_settings(compose_config(*overrides))
    message = str(info.value)
    assert message.startswith(f"{key} is not a setting; did you mean {nearest}"), message
    assert "\n" not in message
    # the suggestion is difflib's nearest among the group's keys
    group, _, name = key.rpartition(".")
    node = compose_config(*[o for o in overrides if o != override])
    known = list((node[group] if group else node).keys())
    best = difflib.get_close_matches(name, known, n=1, cutoff=0)[0]
    assert f"did you mean {group + '.' if group else ''}{best}?" in message


@pytest.mark.parametrize("overrides", [
    ["model=all_cnn_c", "+model.dropout=0.2"],                      # a builder's own argument
    ["downsample=pnorm", "+downsample.trainable_p=true"],           # a layer's own option
    ["downsample=max", "downsample.name=keras_average",
     "+downsample._target_=keras.layers.AveragePooling2D"],         # a user's own layer
])
def test_the_model_and_downsample_nodes_stay_open(overrides):
    conf = check_settings(compose_config(*overrides))
    added = overrides[-1].lstrip("+").split("=")[0]
    group, name = added.split(".")
    assert name in getattr(conf, group)


@pytest.mark.parametrize("override,message", [
    ("trainer.epochs=0", "trainer.epochs must be >= 1, got 0"),
    ("optimizer.learning_rate=0", "optimizer.learning_rate must be a finite number > 0, got 0.0"),
    ("optimizer.learning_rate=-0.1",
     "optimizer.learning_rate must be a finite number > 0, got -0.1"),
    ("trainer.precision=half", "trainer.precision must be one of"),
    ("trainer.jit_compile=maybe", "trainer.jit_compile must be one of auto, true, false"),
    ("optimizer.weight_decay=-1", "optimizer.weight_decay must be >= 0, got -1.0"),
])
def test_out_of_range_values_are_named(override, message):
    with pytest.raises(ConfigError) as info:
        validate(compose_config(override))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("override", ["trainer.epochs=ten", "optimizer.learning_rate=fast"])
def test_values_of_the_wrong_type_fail_at_composition(override):
    overrides = ["downsample=pnorm", override] if override.startswith("downsample") else [
        override]
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(*overrides)
    assert override.split("=")[0] in str(info.value.__cause__) + str(info.value)


@pytest.mark.parametrize("group", ["model", "downsample", "data", "optimizer", "schedule"])
def test_unknown_choices_fail_at_composition(group):
    with pytest.raises(ConfigCompositionException, match=f"{group}/nope"):
        compose_config(f"{group}=nope")


def _rates(schedule, steps):
    """The rate `schedule` (a number or a Keras schedule) gives at each optimizer step."""
    if isinstance(schedule, float):
        return [schedule] * len(steps)
    return [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]


def test_schedules_against_their_formulas():
    assert _rates(schedules.constant(0.1, 10, steps_per_epoch=5), [0, 49]) == [0.1, 0.1]
    # Epoch e is the steps e * 4 .. e * 4 + 3: the rate changes at the first step of epoch 200.
    step = schedules.step(0.1, 350, steps_per_epoch=4, milestones=[200, 250, 300], factor=0.1)
    at = [0, 799, 800, 999, 1000, 1200, 1399]
    assert _rates(step, at) == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.0001, 0.0001])
    cosine = schedules.cosine(1.0, 11, steps_per_epoch=3, min_learning_rate=0.1)
    expected = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / 33)) for s in range(33)]
    assert _rates(cosine, range(33)) == pytest.approx(expected, abs=1e-6)
    # A warm-up of 2 epochs of 5 steps rises by a tenth of the rate per step, from 0.
    warm = schedules.cosine(1.0, 10, steps_per_epoch=5, warmup_epochs=2)
    assert _rates(warm, range(11)) == pytest.approx([s / 10 for s in range(11)], abs=1e-6)
    assert _rates(warm, [15]) == pytest.approx([0.5 * (1 + math.cos(math.pi * 5 / 40))])
