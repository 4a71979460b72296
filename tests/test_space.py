"""Tests for dltune.space: parsing, validation, sampling with real Optuna studies, round trips."""

from __future__ import annotations

import copy
import itertools
import json
import pickle
import re
from pathlib import Path
from typing import Any

import optuna
import pytest

from dltune.config import Config
from dltune.errors import SpaceError
from dltune.space import (
    Choice,
    Fixed,
    FloatRange,
    IntRange,
    PerLayer,
    SearchSpace,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

DEFAULT_PLAIN: dict[str, Any] = {
    "name": "default",
    "metric": None,
    "layers": {"low": 0, "high": 3},  # 0: the linear model
    "units": {"low": 16, "high": 1024, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
    "activation": ["relu", "sigmoid", "tanh", "elu"],
    "loss": ["categorical_crossentropy", "mean_squared_error"],
    "optimizer": ["sgd", "adam", "rmsprop", "adagrad"],
    "learning_rate": {"low": 1e-4, "high": 1.0, "log": True},
    "weight_decay": 0.0,
    "batch_size": [16, 32, 64, 128, 256],
    "epochs": 27,
    "patience": None,
    "min_epochs": 1.0,
    "reduction": 3,
}

# Everything fixed but what a test names: small grids, predictable configs.
FIXED_REST: dict[str, Any] = {
    "dropout": 0.1,
    "loss": "mse",
    "optimizer": "adam",
    "lr": 0.01,
    "weight_decay": 0.0,
    "batch_size": 32,
    "epochs": 5,
}


def study(sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    return optuna.create_study(sampler=sampler or optuna.samplers.RandomSampler(seed=0))


def write(tmp_path: Path, text: str, name: str = "bad_space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Defaults and names
# ---------------------------------------------------------------------------------------------


def test_default_space_is_exactly_the_documented_defaults() -> None:
    space = SearchSpace.default()
    assert space.to_dict() == DEFAULT_PLAIN
    assert space.params["layers"] == IntRange(0, 3)
    assert space.params["units"] == IntRange(16, 1024, log=True)
    assert space.params["dropout"] == FloatRange(0.0, 0.5)
    assert space.params["activation"] == Choice(("relu", "sigmoid", "tanh", "elu"))
    assert space.params["loss"] == Choice(("categorical_crossentropy", "mean_squared_error"))
    assert space.params["optimizer"] == Choice(("sgd", "adam", "rmsprop", "adagrad"))
    assert space.params["learning_rate"] == FloatRange(1e-4, 1.0, log=True)
    assert space.params["weight_decay"] == Fixed(0.0)
    assert space.params["batch_size"] == Choice((16, 32, 64, 128, 256))
    assert (space.epochs, space.patience, space.metric) == (27, None, None)
    assert space.max_layers == 3
    assert space.source == "<default>"


def test_missing_keys_take_the_defaults_and_names_follow_the_source(tmp_path: Path) -> None:
    assert SearchSpace().name == "space"
    assert SearchSpace.from_dict({}).name == "space"
    assert SearchSpace.from_dict({}).source == "<dict>"
    empty = SearchSpace.from_file(write(tmp_path, "", "empty.yaml"))
    comments = SearchSpace.from_file(write(tmp_path, "# nothing here\n", "comments.yaml"))
    assert (empty.name, comments.name) == ("empty", "comments")
    for space in (SearchSpace(), empty, comments):
        assert space.to_dict() == {**DEFAULT_PLAIN, "name": space.name}
    partial = SearchSpace(dropout=0.3, name="mine")
    assert partial.to_dict() == {**DEFAULT_PLAIN, "name": "mine", "dropout": 0.3}


def test_example_space_file_is_the_default_space() -> None:
    space = SearchSpace.from_file(EXAMPLES / "space.yaml")
    assert space.name == "space"
    assert space.to_dict() == {**DEFAULT_PLAIN, "name": "space"}


def test_example_small_space_is_small() -> None:
    space = SearchSpace.from_file(EXAMPLES / "small.yaml")
    assert space.params["layers"] == IntRange(1, 2)
    assert space.params["units"] == Choice((32, 64, 128))
    assert space.params["activation"] == Choice(("relu", "tanh"))
    assert space.params["optimizer"] == Choice(("adam", "sgd"))
    assert space.params["learning_rate"] == FloatRange(1e-3, 1e-1, log=True)
    assert space.params["batch_size"] == Choice((32, 64))
    assert space.epochs == 8


# ---------------------------------------------------------------------------------------------
# Value forms, key by key
# ---------------------------------------------------------------------------------------------

FORMS = [
    # layers (int)
    ("layers", 2, Fixed(2)),
    ("layers", 2.0, Fixed(2)),
    ("layers", "3", Fixed(3)),
    ("layers", [1, 3], Choice((1, 3))),
    ("layers", {"choices": [2, 4]}, Choice((2, 4))),
    ("layers", {"low": 1, "high": 4}, IntRange(1, 4)),
    ("layers", {"low": 1, "high": 5, "step": 2}, IntRange(1, 5, step=2)),
    # units (int)
    ("units", 64, Fixed(64)),
    ("units", [32, 64.0, "128"], Choice((32, 64, 128))),
    ("units", {"choices": [8, 16]}, Choice((8, 16))),
    ("units", {"low": 16, "high": 256, "log": True}, IntRange(16, 256, log=True)),
    ("units", {"low": 32, "high": 256, "step": 32}, IntRange(32, 256, step=32)),
    ("units", {"low": 16, "high": 64, "per_layer": False}, IntRange(16, 64)),
    # dropout (float)
    ("dropout", 0.2, Fixed(0.2)),
    ("dropout", 0, Fixed(0.0)),
    ("dropout", "5e-1", Fixed(0.5)),
    ("dropout", [0, 0.25], Choice((0.0, 0.25))),
    ("dropout", {"choices": [0.1]}, Choice((0.1,))),
    ("dropout", {"low": 0, "high": 0.5}, FloatRange(0.0, 0.5)),
    ("dropout", {"low": 0.0, "high": 0.5, "step": 0.1}, FloatRange(0.0, 0.5, step=0.1)),
    ("dropout", {"low": 0.01, "high": 0.5, "log": True}, FloatRange(0.01, 0.5, log=True)),
    # names
    ("activation", "relu", Fixed("relu")),
    ("activation", ["relu", "TANH"], Choice(("relu", "tanh"))),
    ("activation", {"choices": ["gelu"]}, Choice(("gelu",))),
    ("activation", "none", Fixed("linear")),
    ("activation", ["silu", "Leaky-ReLU"], Choice(("swish", "leaky_relu"))),
    ("loss", "mse", Fixed("mean_squared_error")),
    (
        "loss",
        ["cce", "mae", "huber"],
        Choice(("categorical_crossentropy", "mean_absolute_error", "huber")),
    ),
    ("loss", {"choices": ["bce"]}, Choice(("binary_crossentropy",))),
    ("optimizer", "adam", Fixed("adam")),
    ("optimizer", ["sgd", "AdamW"], Choice(("sgd", "adamw"))),
    ("optimizer", {"choices": ["nesterov"]}, Choice(("nesterov",))),
    # learning_rate (float > 0)
    ("learning_rate", 0.01, Fixed(0.01)),
    ("learning_rate", "1e-3", Fixed(0.001)),
    ("learning_rate", [1e-3, "1e-2"], Choice((0.001, 0.01))),
    ("learning_rate", {"choices": [0.1]}, Choice((0.1,))),
    ("learning_rate", {"low": "1e-4", "high": 1, "log": True}, FloatRange(1e-4, 1.0, log=True)),
    ("learning_rate", {"low": 0.1, "high": 0.5, "step": 0.1}, FloatRange(0.1, 0.5, step=0.1)),
    # weight_decay (float >= 0)
    ("weight_decay", 0, Fixed(0.0)),
    ("weight_decay", [0, 1e-4], Choice((0.0, 1e-4))),
    ("weight_decay", {"low": 1e-5, "high": 1e-2, "log": True}, FloatRange(1e-5, 1e-2, log=True)),
    ("weight_decay", {"low": 0, "high": 0.01}, FloatRange(0.0, 0.01)),
    # batch_size (int >= 1)
    ("batch_size", 32, Fixed(32)),
    ("batch_size", [32, 64], Choice((32, 64))),
    ("batch_size", {"choices": [128]}, Choice((128,))),
    ("batch_size", {"low": 16, "high": 128, "step": 16}, IntRange(16, 128, step=16)),
    ("batch_size", {"low": 16, "high": 512, "log": True}, IntRange(16, 512, log=True)),
]


@pytest.mark.parametrize(("key", "value", "expected"), FORMS)
def test_every_value_form_of_every_key(key: str, value: Any, expected: Any) -> None:
    param = SearchSpace(**{key: value}).params[key]
    assert param == expected
    # 2.0 and 2 compare equal: check the kinds too, since the engines rely on them
    kinds: dict[str, type] = {"layers": int, "units": int, "batch_size": int}
    kinds.update(activation=str, loss=str, optimizer=str)
    if isinstance(param, Fixed | Choice):
        values = param.values()
    else:
        assert isinstance(param, IntRange | FloatRange)
        values = [param.low, param.high]
    assert all(type(v) is kinds.get(key, float) for v in values)


def test_lr_alias_and_canonical_names_in_to_dict() -> None:
    space = SearchSpace(lr={"low": 1e-3, "high": 0.1, "log": True}, loss=["mse", "bce"])
    plain = space.to_dict()
    assert "lr" not in plain
    assert plain["learning_rate"] == {"low": 0.001, "high": 0.1, "log": True}
    assert plain["loss"] == ["mean_squared_error", "binary_crossentropy"]
    assert space == SearchSpace(
        learning_rate={"low": 1e-3, "high": 0.1, "log": True},
        loss=["mean_squared_error", "binary_crossentropy"],
    )


def test_fixed_keys_epochs_patience_metric_name() -> None:
    space = SearchSpace(epochs="40", patience=5, metric="RMSE", name=" quick ")
    assert (space.epochs, space.patience, space.metric, space.name) == (40, 5, "rmse", "quick")
    assert SearchSpace(epochs=3.0).epochs == 3
    assert SearchSpace(patience=None).patience is None


def test_numeric_strings_from_yaml_are_numbers(tmp_path: Path) -> None:
    # PyYAML reads 1e-3 (no dot) as the string "1e-3"
    path = write(
        tmp_path, "lr: 1e-3\nweight_decay: [0, 1e-4]\ndropout: {low: 0, high: 5e-1}\n", "s.yaml"
    )
    space = SearchSpace.from_file(path)
    assert space.params["learning_rate"] == Fixed(0.001)
    assert space.params["weight_decay"] == Choice((0.0, 0.0001))
    assert space.params["dropout"] == FloatRange(0.0, 0.5)


def test_per_layer_forms_parse() -> None:
    each = SearchSpace(units={"per_layer": True, "low": 16, "high": 128, "log": True})
    assert each.params["units"] == PerLayer(each=IntRange(16, 128, log=True))
    listed = SearchSpace(layers=[1, 2], units={"per_layer": True, "choices": [8, 16]})
    assert listed.params["units"] == PerLayer(each=Choice((8, 16)))
    specs = SearchSpace(layers=[1, 3], units={"per_layer": [64, [32, 64], {"low": 8, "high": 32}]})
    assert specs.params["units"] == PerLayer(specs=(Fixed(64), Choice((32, 64)), IntRange(8, 32)))
    # more entries than layers is fine: the extra ones are never used
    assert SearchSpace(layers=1, units={"per_layer": [8, 16]}).max_layers == 1


# ---------------------------------------------------------------------------------------------
# Sampling through real Optuna studies
# ---------------------------------------------------------------------------------------------


def test_suggest_names_and_fixed_values_are_not_suggested() -> None:
    space = SearchSpace.default()
    trial = study().ask()
    config = space.suggest(trial)
    assert isinstance(config, Config)
    sampled = {"layers", "units", "dropout", "activation", "loss", "optimizer", "learning_rate"}
    assert set(trial.params) == sampled | {"batch_size"}
    assert config.weight_decay == 0.0 and config.epochs == 27
    assert config.units == (trial.params["units"],) * config.layers
    assert 0 <= config.layers <= 3 and 16 <= trial.params["units"] <= 1024
    assert 1e-4 <= config.learning_rate <= 1.0 and 0.0 <= config.dropout <= 0.5


def test_suggest_uses_the_distributions_the_space_describes() -> None:
    space = SearchSpace(
        layers=[1, 2],
        units={"low": 16, "high": 1024, "log": True},
        dropout={"low": 0.0, "high": 0.5, "step": 0.1},
        learning_rate={"low": 1e-4, "high": 1.0, "log": True},
        batch_size={"low": 16, "high": 64, "step": 16},
    )
    s = study()
    space.suggest(s.ask())
    dists = s.trials[-1].distributions
    assert dists["layers"] == optuna.distributions.CategoricalDistribution([1, 2])
    assert dists["units"] == optuna.distributions.IntDistribution(16, 1024, log=True)
    assert dists["dropout"] == optuna.distributions.FloatDistribution(0.0, 0.5, step=0.1)
    assert dists["learning_rate"] == optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)
    assert dists["batch_size"] == optuna.distributions.IntDistribution(16, 64, step=16)


def test_all_fixed_space_touches_no_trial() -> None:
    space = SearchSpace(layers=2, units=64, activation="relu", **FIXED_REST)
    trial = study().ask()
    config = space.suggest(trial)
    assert trial.params == {}
    assert config == Config(
        2, (64, 64), 0.1, "relu", "mean_squared_error", "adam", 0.01, 0.0, 32, 5
    )
    assert Fixed(3).suggest(trial, "x") == 3 and trial.params == {}


@pytest.mark.parametrize(
    "units",
    [
        {"per_layer": True, "low": 8, "high": 64},
        {"per_layer": True, "choices": [8, 16, 32]},
        {"per_layer": [[8, 16], {"low": 4, "high": 32, "log": True}, 20]},
    ],
)
def test_per_layer_units_are_suggested_only_for_existing_layers(units: dict[str, Any]) -> None:
    space = SearchSpace(layers={"low": 1, "high": 3}, units=units)
    s = study()
    seen_layers = set()
    for _ in range(40):
        trial = s.ask()
        config = space.suggest(trial)
        seen_layers.add(config.layers)
        assert "units" not in trial.params
        assert len(config.units) == config.layers
        for k in range(1, 4):
            spec = space.params["units"].for_layer(k)  # type: ignore[union-attr]
            sampled = k <= config.layers and not isinstance(spec, Fixed)
            assert (f"units_{k}" in trial.params) == sampled
            if sampled:
                assert trial.params[f"units_{k}"] == config.units[k - 1]
            if k <= config.layers:
                width = config.units[k - 1]
                assert (
                    width in spec.values()
                    if isinstance(spec, Fixed | Choice)
                    else spec.low <= width <= spec.high
                )
    assert seen_layers == {1, 2, 3}


@pytest.mark.parametrize(
    "space",
    [
        SearchSpace.default(),
        SearchSpace(
            layers=[1, 2],
            units={"per_layer": [[8, 16], 4]},
            weight_decay={"low": 1e-5, "high": 1e-2, "log": True},
        ),
        SearchSpace(
            units={"per_layer": True, "low": 8, "high": 64, "step": 8},
            dropout=[0.0, 0.5],
            lr="0.01",
        ),
    ],
)
def test_config_from_params_inverts_suggest(space: SearchSpace) -> None:
    s = study()
    for _ in range(15):
        trial = s.ask()
        config = space.suggest(trial)
        assert space.config_from_params(trial.params) == config
        # the params survive storage: a finished trial's params rebuild the same config
        s.tell(trial, 0.0)
        assert space.config_from_params(s.trials[-1].params) == config


def test_config_from_params_names_a_missing_param() -> None:
    with pytest.raises(SpaceError, match=r"<dict>: .*lack 'dropout'"):
        SearchSpace().config_from_params({"layers": 1, "units": 16})


# ---------------------------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------------------------


def run_grid(space: SearchSpace) -> tuple[list[Config], int]:
    s = optuna.create_study(sampler=optuna.samplers.GridSampler(space.grid(), seed=0))
    configs: list[Config] = []

    def objective(trial: optuna.Trial) -> float:
        configs.append(space.suggest(trial))
        return 0.0

    s.optimize(objective, n_trials=100)  # GridSampler stops the study when the grid is done
    return configs, len(s.trials)


def test_grid_enumerates_exactly_the_expected_configs() -> None:
    space = SearchSpace(layers=[1, 2], units=[8, 16], activation=["relu", "tanh"], **FIXED_REST)
    assert space.grid() == {"layers": [1, 2], "units": [8, 16], "activation": ["relu", "tanh"]}
    configs, n_trials = run_grid(space)
    expected = {
        Config(n, (u,) * n, 0.1, a, "mean_squared_error", "adam", 0.01, 0.0, 32, 5)
        for n, u, a in itertools.product([1, 2], [8, 16], ["relu", "tanh"])
    }
    assert n_trials == 8 and len(configs) == 8
    assert set(configs) == expected


def test_grid_with_per_layer_units() -> None:
    space = SearchSpace(
        layers=[1, 2], units={"per_layer": [[8, 16], [4, 32], 99]}, activation="relu", **FIXED_REST
    )
    assert space.grid() == {"layers": [1, 2], "units_1": [8, 16], "units_2": [4, 32]}
    configs, n_trials = run_grid(space)
    widths = {(8,), (16,)} | set(itertools.product([8, 16], [4, 32]))
    expected = {
        Config(len(w), w, 0.1, "relu", "mean_squared_error", "adam", 0.01, 0.0, 32, 5)
        for w in widths
    }
    # GridSampler crosses every list, so one-layer configs repeat once per units_2 value
    assert n_trials == 8
    assert set(configs) == expected and len(expected) == 6


def test_grid_skips_fixed_per_layer_entries_and_uses_each_for_every_layer() -> None:
    space = SearchSpace(layers=[2, 3], units={"per_layer": True, "choices": [8, 16]}, **FIXED_REST)
    grid = space.grid()
    fixed_first = SearchSpace(
        layers=2, units={"per_layer": [32, [8, 16]]}, activation="relu", **FIXED_REST
    )
    assert fixed_first.grid() == {"units_2": [8, 16]}
    configs, _ = run_grid(fixed_first)
    assert sorted(c.units for c in configs) == [(32, 8), (32, 16)]
    widths = [8, 16]
    activations = ["relu", "sigmoid", "tanh", "elu"]
    assert grid == {
        "layers": [2, 3],
        "units_1": widths,
        "units_2": widths,
        "units_3": widths,
        "activation": activations,
    }


def test_grid_refuses_ranges_naming_each_with_a_list_to_use(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "layers: 2\nunits: 32\ndropout: 0.1\nlr: {low: 1e-4, high: 1, log: true}\n",
        "g.yaml",
    )
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_file(path).grid()
    message = str(info.value)
    assert message.startswith(
        f"{path}: the grid sampler needs lists of values: key 'learning_rate'"
    )
    assert "log-uniform in [0.0001, 1]" in message
    assert "[0.0001, 0.001, 0.01, 0.1, 1.0]" in message and "sampler=tpe" in message
    with pytest.raises(SpaceError) as info:
        SearchSpace.default().grid()
    assert all(
        f"key '{k}' is a range" in str(info.value)
        for k in ("layers", "units", "dropout", "learning_rate")
    )
    assert "[0, 1, 2, 3]" in str(info.value)
    with pytest.raises(SpaceError, match=r"units.per_layer\[1\]' is a range"):
        SearchSpace(layers=2, units={"per_layer": [8, {"low": 4, "high": 8}]}, **FIXED_REST).grid()


def test_param_grid_values() -> None:
    assert Fixed(1).grid_values("x") == [1]
    assert Choice((1, 2)).grid_values("x") == [1, 2]
    with pytest.raises(SpaceError, match="key 'units' is a range"):
        IntRange(1, 4).grid_values("units")
    with pytest.raises(SpaceError, match="key 'dropout' is a range"):
        FloatRange(0.0, 0.5).grid_values("dropout")


# ---------------------------------------------------------------------------------------------
# Round trips, equality, description
# ---------------------------------------------------------------------------------------------

ROUND_TRIP_SPACES = [
    {},
    {"name": "x", "metric": "accuracy", "epochs": 3, "patience": 2},
    {"layers": 2, "units": {"per_layer": [[8, 16], {"low": 4, "high": 64, "log": True}]}},
    {"units": {"per_layer": True, "choices": [8, 16]}, "layers": [1, 4]},
    {"units": {"per_layer": True, "low": 8, "high": 64, "step": 8}},
    {"dropout": {"choices": [0.0, 0.3]}, "lr": "1e-3", "weight_decay": [0, 1e-5]},
    {
        "learning_rate": {"low": 1e-5, "high": 0.3, "log": True},
        "batch_size": {"low": 8, "high": 64, "step": 8},
    },
    {"activation": "none", "loss": "mae", "optimizer": "momentum", "metric": "mae"},
    {"conv_layers": {"low": 0, "high": 2}, "filters": {"per_layer": [8, [16, 32]]}},
    {"conv_layers": 1, "kernel_size": [3, 7], "pool": 0, "batch_norm": True, "global_pool": False},
]


@pytest.mark.parametrize("keys", ROUND_TRIP_SPACES)
def test_round_trip_through_dict_json_and_yaml_file(keys: dict[str, Any], tmp_path: Path) -> None:
    space = SearchSpace.from_dict(keys)
    plain = space.to_dict()
    # the convolutional keys a space gives, and no others: a dense space reads as it always has
    conv = [k for k in SearchSpace.CONV_PARAM_KEYS if k in keys]
    # convolutional keys and objectives only where given (a study of one objective, flat
    # data, keeps the form it was stored in before they existed)
    optional = (*SearchSpace.CONV_PARAM_KEYS, "objectives")
    assert list(plain) == [k for k in SearchSpace.KEYS if k not in optional or k in conv]
    assert SearchSpace.from_dict(plain) == space
    assert SearchSpace.from_dict(json.loads(json.dumps(plain))) == space
    again = SearchSpace.from_file(write(tmp_path, space.to_yaml(), "trip.yaml"))
    assert again == space and again.to_dict() == plain


def test_pickles_and_copies_by_value() -> None:
    space = SearchSpace.from_dict(
        {"units": {"per_layer": True, "choices": [8, 16]}}, source="s.yaml"
    )
    for again in (pickle.loads(pickle.dumps(space)), copy.deepcopy(space)):
        assert again == space and again.source == "s.yaml"


def test_equality_is_by_value() -> None:
    assert SearchSpace(lr=0.1) == SearchSpace.from_dict({"learning_rate": 0.1}, source="elsewhere")
    assert SearchSpace(lr=0.1) != SearchSpace(lr=0.2)
    assert SearchSpace(name="a") != SearchSpace(name="b")
    assert SearchSpace() != "space"


def test_describe_rows() -> None:
    rows = dict(SearchSpace.default().describe())
    dense = [key for key in SearchSpace.KEYS if key not in SearchSpace.CONV_PARAM_KEYS]
    assert [key for key, _ in SearchSpace.default().describe()] == dense
    assert rows["learning_rate"] == "log-uniform in [0.0001, 1]"
    assert rows["units"] == "log-uniform integers in [16, 1024]"
    assert rows["layers"] == "integers in [0, 3]"
    assert rows["weight_decay"] == "fixed 0.0"
    assert rows["activation"] == "one of relu, sigmoid, tanh, elu"
    assert "27" in rows["epochs"] and rows["patience"] == "off"
    per_layer = dict(SearchSpace(layers=2, units={"per_layer": [8, [16, 32]]}).describe())
    assert per_layer["units"] == "layer 1: fixed 8; layer 2: one of 16, 32"
    assert (
        dict(SearchSpace(dropout={"low": 0, "high": 0.5, "step": 0.1}).describe())["dropout"]
        == "uniform in [0, 0.5], step 0.1"
    )


# ---------------------------------------------------------------------------------------------
# Fitting the space to a task
# ---------------------------------------------------------------------------------------------


def test_for_task_drops_losses_that_do_not_apply_with_a_note() -> None:
    space, notes = SearchSpace.default().for_task("regression")
    assert space.params["loss"] == Choice(("mean_squared_error",))
    assert notes == [
        "loss 'categorical_crossentropy' does not apply to a regression target; "
        "dropped from the choices"
    ]
    assert space.to_dict() == {**DEFAULT_PLAIN, "loss": ["mean_squared_error"]}
    same, notes = SearchSpace.default().for_task("classification")
    assert same == SearchSpace.default() and notes == []


@pytest.mark.parametrize(
    ("keys", "task", "fragments"),
    [
        (
            {"loss": "cce"},
            "regression",
            [
                "'categorical_crossentropy' does not apply to a regression",
                "mean_squared_error, mean_absolute_error, huber",
            ],
        ),
        (
            {"loss": ["cce", "bce"]},
            "regression",
            [
                "categorical_crossentropy, binary_crossentropy",
                "Losses that apply: mean_squared_error",
            ],
        ),
        ({"metric": "rmse"}, "classification", ["metric 'rmse'", "accuracy"]),
        ({"metric": "accuracy"}, "regression", ["metric 'accuracy'", "rmse or mae"]),
        ({}, "clustering", ["task 'clustering'", "classification, regression"]),
    ],
)
def test_for_task_errors(keys: dict[str, Any], task: str, fragments: list[str]) -> None:
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_dict(keys, source="t.yaml").for_task(task)
    assert str(info.value).startswith("t.yaml: ")
    for fragment in fragments:
        assert fragment in str(info.value)


# ---------------------------------------------------------------------------------------------
# Every validation error: file name, key, value, and a hint where there is one
# ---------------------------------------------------------------------------------------------

BAD = [
    # unknown keys
    (
        "activaton: [relu]\n",
        ["unknown key 'activaton'", "did you mean 'activation'?", "Known keys: name, metric"],
    ),
    ("xyz: 1\n", ["unknown key 'xyz'", "Known keys"]),
    ("units: {low: 16, hgh: 64}\n", ["units: unknown key 'hgh'", "did you mean 'high'?"]),
    (
        "layers: 2\nunits: {per_layer: [32, {lo: 16, high: 64}]}\n",
        ["units.per_layer[1]: unknown key 'lo'", "did you mean 'low'?"],
    ),
    # bad types
    ("activation: 3\n", ["activation", "3", "must be a name"]),
    ("dropout: abc\n", ["dropout", "'abc'", "must be a number"]),
    ("lr: 1e-3x\n", ["lr", "'1e-3x'", "must be a number"]),
    ("units: [[32]]\n", ["units[0]", "[32]", "single value"]),
    ("units: null\n", ["units", "null", "remove the key"]),
    ("units: {low: 16, high: 64, log: 2}\n", ["units.log", "2", "true or false"]),
    ("dropout: .nan\n", ["dropout", "nan", "finite"]),
    ("name: [a]\n", ["name", "['a']"]),
    # booleans are not numbers
    ("layers: true\n", ["layers", "true", "not a boolean"]),
    ("dropout: {low: 0, high: yes}\n", ["dropout.high", "true", "not a boolean"]),
    ("batch_size: [32, false]\n", ["batch_size[1]", "false", "not a boolean"]),
    # whole numbers
    ("units: 32.5\n", ["units", "32.5", "whole number"]),
    ("batch_size: [32, 64.5]\n", ["batch_size[1]", "64.5", "whole number"]),
    ("layers: {low: 1, high: 2.5}\n", ["layers.high", "2.5", "whole number"]),
    # bounds
    ("dropout: 1.5\n", ["dropout must be in [0, 1); got 1.5. Use a rate such as 0.2."]),
    ("dropout: {low: 0.1, high: 1.0}\n", ["dropout.high", "1.0", "[0, 1)"]),
    ("dropout: [-0.1, 0.2]\n", ["dropout[0]", "-0.1", "[0, 1)"]),
    ("lr: -0.1\n", ["lr", "-0.1", "> 0"]),
    ("learning_rate: 0\n", ["learning_rate must be > 0; got 0."]),
    ("weight_decay: -1\n", ["weight_decay must be >= 0; got -1. Use 0 for none"]),
    ("lr: '-1e-3'\n", ["lr must be > 0; got -0.001."]),
    ("layers: 40\n", ["layers", "40", "[0, 32]"]),
    ("units: 0\n", ["units", "0", "[1, 65536]"]),
    ("batch_size: 0\n", ["batch_size", "0", ">= 1"]),
    # ranges
    ("layers: {low: 3, high: 1}\n", ["layers", "low 3 is greater than high 1"]),
    ("units: {low: 16}\n", ["units", "high missing", "{low: 16}"]),
    (
        "weight_decay: {low: 0, high: 0.1, log: true}\n",
        ["weight_decay", "low 0.0", "log: true needs low > 0"],
    ),
    (
        "dropout: {low: 0, high: 0.5, log: true}\n",
        ["dropout", "low 0.0", "log: true needs low > 0"],
    ),
    (
        "lr: {low: 0.001, high: 0.1, log: true, step: 0.01}\n",
        ["lr", "step: 0.01", "log and step cannot be combined"],
    ),
    (
        "batch_size: {low: 16, high: 100, step: 16}\n",
        ["batch_size.step", "16", "multiple", "Use high 96"],
    ),
    ("units: {low: 16, high: 64, step: 0}\n", ["units.step", "0", "> 0"]),
    ("dropout: {choices: [0.1], low: 0}\n", ["dropout", "choices cannot be combined with low"]),
    ("activation: {low: 1, high: 2}\n", ["activation", "{low: 1, high: 2}", "categorical"]),
    # names
    (
        "activation: [relu, rleu]\n",
        ["activation[1] 'rleu' is not known; did you mean 'relu'? Choose from: relu, sigmoid"],
    ),
    ("activation: rleu\n", ["activation 'rleu' is not known; did you mean 'relu'?"]),
    (
        "loss: mean_sqared_error\n",
        ["loss", "'mean_sqared_error'", "did you mean 'mean_squared_error'?", "huber"],
    ),
    ("optimizer: [adma]\n", ["optimizer[0]", "'adma'", "did you mean 'adam'?", "rmsprop"]),
    ("optimizer: zzzz\n", ["optimizer", "'zzzz'", "is not known. Choose from: sgd"]),
    # choices
    ("loss: [mse, mean_squared_error]\n", ["loss lists 'mean_squared_error' twice", "'mse'"]),
    ("batch_size: [32, 32.0]\n", ["batch_size lists 32 twice", "32.0"]),
    ("activation: []\n", ["activation", "[]", "empty list"]),
    ("activation: {choices: []}\n", ["activation.choices", "[]", "empty list"]),
    ("units: {choices: 3}\n", ["units.choices", "3", "list"]),
    # aliases
    ("lr: 0.1\nlearning_rate: 0.2\n", ["lr", "learning_rate", "0.1", "0.2", "not both"]),
    # epochs and patience
    ("epochs: {low: 5, high: 50}\n", ["epochs", "{low: 5, high: 50}", "maximum", "best epoch"]),
    ("epochs: [10, 20]\n", ["epochs", "[10, 20]", "maximum"]),
    ("epochs: 0\n", ["epochs", "0", ">= 1"]),
    ("epochs: true\n", ["epochs", "true", "boolean"]),
    ("patience: [1, 2]\n", ["patience", "[1, 2]", "single whole number"]),
    ("patience: 0\n", ["patience", "0", ">= 1"]),
    # per-layer units
    (
        "layers: {low: 1, high: 3}\nunits: {per_layer: [32, 64]}\n",
        ["units.per_layer has 2 entries", "up to 3", "[32, 64]"],
    ),
    (
        "layers: 3\nunits: {per_layer: [32, {low: 64, high: 16}, 8]}\n",
        ["units.per_layer[1]", "low 64 is greater than high 16"],
    ),
    ("layers: 2\nunits: {per_layer: [32, 0]}\n", ["units.per_layer[1]", "0", "[1, 65536]"]),
    ("units: {per_layer: true}\n", ["units", "per_layer: true", "low/high"]),
    ("units: {per_layer: 3}\n", ["units.per_layer", "3", "true or a list"]),
    ("units: {per_layer: []}\n", ["units.per_layer", "empty list"]),
    ("units: {per_layer: [16], low: 8}\n", ["units", "low", "into the entries"]),
    (
        "layers: 1\nunits: {per_layer: [{per_layer: true, low: 1, high: 2}]}\n",
        ["units.per_layer[0].per_layer", "nested"],
    ),
    (
        "dropout: {per_layer: true, low: 0, high: 0.5}\n",
        ["dropout.per_layer", "units, filters and kernel_size only"],
    ),
    ("batch_norm: {low: 0, high: 1}\n", ["batch_norm", "true or false", "not a range"]),
    ("global_pool: maybe\n", ["global_pool", "'maybe'", "true or false"]),
    ("conv_layers: 17\n", ["conv_layers", "17", "[0, 16]"]),
    ("filters: {per_layer: [8]}\nconv_layers: 2\n", ["filters.per_layer", "1 entries", "2"]),
    ("kernel_size: 0\n", ["kernel_size", "[1, 64]", "Use a size such as 3"]),
    ("pool: -1\n", ["pool", "-1", "0 for no pooling"]),
    # metric
    ("metric: acuracy\n", ["metric 'acuracy' is not known; did you mean 'accuracy'?", "rmse, mae"]),
    ("metric: 3\n", ["metric", "3", "accuracy"]),
    # YAML and the top level
    (
        "layers: 2\n  units: 3\n",
        ["not valid YAML at line 2, column 8: mapping values are not allowed here"],
    ),
    (
        "layers: 2\nunits: [32, 64\ndropout: 0.1\n",
        ["not valid YAML at line 3, column 8:", "flow sequence"],
    ),
    ("units: 32\nunits: 64\n", ["not valid YAML at line 2, column 1", "'units' is given twice"]),
    ("- relu\n- tanh\n", ["top level must be a mapping", "['relu', 'tanh']"]),
    ("relu\n", ["top level must be a mapping", "'relu'"]),
]


@pytest.mark.parametrize(
    ("text", "fragments"), BAD, ids=[text.split("\n")[0][:40] for text, _ in BAD]
)
def test_every_validation_error_names_file_key_and_value(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_errors_from_python_name_the_dict_source() -> None:
    with pytest.raises(SpaceError, match=re.escape("<dict>: dropout must be in [0, 1); got 1.5.")):
        SearchSpace(dropout=1.5)
    with pytest.raises(SpaceError, match=r"^my-source: unknown key 'nme'; did you mean 'name'\?"):
        SearchSpace.from_dict({"nme": "x"}, source="my-source")
    with pytest.raises(SpaceError, match=r"^<dict>: the top level must be a mapping.*list"):
        SearchSpace.from_dict([1, 2])  # type: ignore[arg-type]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "space.yaml"
    with pytest.raises(SpaceError, match=rf"^{re.escape(str(missing))}: no such file$"):
        SearchSpace.from_file(missing)
    with pytest.raises(SpaceError, match="directory"):
        SearchSpace.from_file(tmp_path)


def test_the_baseline_is_the_textbook_configuration_projected_into_the_space():
    assert SearchSpace.default().baseline_params() == {
        "layers": 1,
        "units": 128,
        "dropout": 0.2,
        "activation": "relu",
        "loss": "categorical_crossentropy",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 32,
    }
    narrow = SearchSpace(
        layers=[2, 3],
        units={"per_layer": True, "low": 200, "high": 300, "step": 50},
        activation=["tanh", "elu"],
        batch_size=[100, 200],
        lr={"low": 0.01, "high": 0.1},
        dropout=0.5,
    )
    assert narrow.baseline_params() == {
        "layers": 2,
        "units_1": 200,
        "units_2": 200,
        "activation": "tanh",
        "loss": "categorical_crossentropy",
        "optimizer": "adam",
        "learning_rate": 0.01,
        "batch_size": 100,
    }
    # every baseline is a configuration the space can produce
    config = narrow.config_from_params(narrow.baseline_params())
    assert config.units == (200, 200) and config.dropout == 0.5


# --- regressions found by the property tests (tests/test_fuzz.py) ----------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # YAML aliases make a value that contains itself: the message shows it as `...`
        ("layers: &a [*a]\n", ["layers[0] must be a single value", "[...]"]),
        ("&a {name: *a}\n", ["name must be non-empty text", "{name: ...}"]),
        ("layers: &a {low: *a, high: 3}\n", ["layers.low must be a number", "{low: ..., high: 3}"]),
        # an integer past float's range (math.isfinite raised OverflowError)
        ("layers: " + "9" * 400 + "\n", ["layers", "integer of 400 digits"]),
        # a step so small that the number of steps is infinite (round(inf) raised)
        ("dropout: {low: 0, high: 0.5, step: 1.0e-320}\n", ["dropout.step", "too small"]),
        # a min_epochs whose inverse is infinite (round(inf) raised)
        ("min_epochs: 5.0e-324\n", ["min_epochs under 1", "whole fraction"]),
        # PyYAML's scalar constructors raised ValueError, IndexError, KeyError, AttributeError
        ("name: 2020-13-45\n", ["line 1, column 7", "'2020-13-45' is not a valid timestamp"]),
        ("name: 2001-01-01 00:00:00 +99:99\n", ["line 1", "not a valid timestamp"]),
        ("name: !!timestamp soon\n", ["'soon' is not a valid timestamp"]),
        ("layers: 0x_\n", ["line 1, column 9", "'0x_' is not a valid int"]),
        ("layers: !!int abc\n", ["'abc' is not a valid int"]),
        ("layers: !!int ''\n", ["'' is not a valid int"]),
        ("layers: !!float abc\n", ["'abc' is not a valid float"]),
        ("layers: !!bool maybe\n", ["'maybe' is not a valid bool"]),
        ("layers: " + "9" * 5000 + "\n", ["not a valid int", "4300 digits"]),
        # a mapping tag on a scalar: the duplicate-key check unpacked its text (ValueError)
        ("layers: !!set .\n", ["line 1", "expected a mapping node, but found scalar"]),
        ("layers: !!map [1]\n", ["line 1", "expected a mapping node, but found sequence"]),
        # nesting deeper than PyYAML's recursive composer can go (RecursionError)
        ("[" * 5000 + "]" * 5000, ["nested too deeply"]),
    ],
)
def test_malformed_space_files_raise_space_errors(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for word in words:
        assert word in message, f"{word!r} not in: {message}"


# ---------------------------------------------------------------------------------------------
# The convolutional keys: fitted to the data's shape
# ---------------------------------------------------------------------------------------------


def test_flat_data_keep_the_dense_network_alone() -> None:
    space = SearchSpace.default()
    fitted, notes = space.for_input((64,))
    assert fitted == space and notes == [] and dict(fitted.conv) == {}
    unused, notes = SearchSpace(filters=16, pool=0).for_input((64,))
    assert dict(unused.conv) == {}
    assert notes == [
        "filters, pool apply to convolutional layers; the examples are flat rows, "
        "so they are not used"
    ]


def test_convolutions_asked_of_flat_data_are_refused_with_the_fix() -> None:
    with pytest.raises(SpaceError, match=r"conv_layers 2 .* flat rows of 64 values.*shape="):
        SearchSpace(conv_layers=2).for_input((64,))
    assert SearchSpace(conv_layers=0).for_input((64,))[0].suggest(_trial()).conv_layers == 0


@pytest.mark.parametrize(
    ("shape", "most"), [((1, 8, 8), 3), ((1, 28, 28), 3), ((1, 24), 3), ((6, 100), 3), ((1, 5), 2)]
)
def test_shaped_data_search_conv_layers_as_far_as_pooling_leaves_room(shape, most) -> None:
    fitted, notes = SearchSpace.default().for_input(shape)
    assert notes == []
    assert set(fitted.conv) == set(SearchSpace.CONV_PARAM_KEYS)
    assert fitted.conv["conv_layers"].to_plain() == {"low": 0, "high": most}


def test_a_space_whose_pooling_shrinks_the_input_below_one_element_is_refused() -> None:
    with pytest.raises(SpaceError, match=r"conv_layers up to 4 with pool 2: .*\(8x8\) below one"):
        SearchSpace(conv_layers=[0, 4]).for_input((1, 8, 8))
    SearchSpace(conv_layers=[0, 4], pool=0).for_input((1, 8, 8))  # no pooling: no shrinking


def test_conv_keys_are_suggested_only_in_trials_with_blocks() -> None:
    fitted, _ = SearchSpace(
        conv_layers=[0, 2], filters={"per_layer": True, "low": 4, "high": 8}
    ).for_input((3, 24))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        config = fitted.suggest(trial)
        seen.add(config.conv_layers)
        names = set(trial.params)
        if config.conv_layers == 0:
            assert not names & {"filters_1", "kernel_size", "batch_norm", "global_pool"}
            assert config.filters == ()
        else:
            assert {f"filters_{k}" for k in range(1, config.conv_layers + 1)} <= names
            assert f"filters_{config.conv_layers + 1}" not in names
            assert len(config.filters) == config.conv_layers
        assert fitted.config_from_params(trial.params) == config
        study.tell(trial, 0.0)
    assert seen == {0, 2}


def test_the_textbook_first_trial_of_shaped_data_is_keras_mnist_convnet() -> None:
    fitted, _ = SearchSpace.default().for_input((1, 28, 28))
    config = fitted.config_from_params(fitted.baseline_params())
    assert (config.conv_layers, config.filters, config.kernel_size, config.pool) == (
        2,
        (32, 32),
        (3, 3),
        2,
    )


def test_images_keep_their_convolutional_defaults_and_first_trial() -> None:
    """Images (C, H, W): the defaults and the first trial from before kernels were per block
    (one kernel_size for every block, shared filters, max pooling of 2)."""
    fitted, _ = SearchSpace.default().for_input((1, 28, 28))
    assert {k: fitted.conv[k].to_plain() for k in SearchSpace.CONV_PARAM_KEYS} == {
        "conv_layers": {"low": 0, "high": 3},
        "filters": {"low": 8, "high": 64, "log": True},
        "kernel_size": [3, 5],
        "pool": 2,
        "batch_norm": [False, True],
        "global_pool": [False, True],
    }
    assert fitted.baseline_params() == {
        "layers": 1,
        "units": 128,
        "dropout": 0.2,
        "activation": "relu",
        "loss": "categorical_crossentropy",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 32,
        "conv_layers": 2,
        "filters": 32,
        "kernel_size": 3,
        "batch_norm": False,
        "global_pool": False,
    }
    # the FCN's width is for signals only
    assert fitted.baseline_params(width=0.25) == fitted.baseline_params()


# ---------------------------------------------------------------------------------------------
# The linear model (layers 0) and the FCN, a signal study's first trial
# ---------------------------------------------------------------------------------------------

FCN_CONFIG = Config(
    layers=0,
    units=(),
    dropout=0.0,
    activation="relu",
    loss="categorical_crossentropy",
    optimizer="adam",
    learning_rate=1e-3,
    weight_decay=0.0,
    batch_size=16,
    epochs=27,
    conv_layers=3,
    filters=(128, 256, 128),
    kernel_size=(8, 5, 3),
    pool=0,
    batch_norm=True,
    global_pool=True,
)


def test_layers_0_is_the_linear_model_and_the_default_space_holds_it() -> None:
    assert SearchSpace(layers=0).params["layers"] == Fixed(0)
    assert SearchSpace(layers=[0, 2]).params["layers"] == Choice((0, 2))
    assert SearchSpace.from_dict({"layers": {"low": 0, "high": 1}}).max_layers == 1
    assert SearchSpace.default().params["layers"] == IntRange(0, 3)
    units = {"per_layer": True, "low": 8, "high": 64}
    linear = SearchSpace(layers=0, units=units, activation="relu", **FIXED_REST)
    trial = _trial()
    config = linear.suggest(trial)
    assert (config.layers, config.units) == (0, ())
    assert trial.params == {}  # define-by-run: no units_k for a network without hidden layers
    assert config.short().startswith("0x[] mean_squared_error adam")
    # a single width is still suggested (the space's units key), and ignored
    trial = _trial()
    config = SearchSpace(layers=0, units=[8, 16], activation="relu", **FIXED_REST).suggest(trial)
    assert set(trial.params) == {"units"} and config.units == ()
    # the sampler finds both the linear model and the networks in the default space
    space, seen = SearchSpace.default(), set()
    random = study()
    for _ in range(40):
        t = random.ask()
        seen.add(space.suggest(t).layers)
        random.tell(t, 0.0)
    assert seen == {0, 1, 2, 3}
    # the textbook first trial keeps its one hidden layer of 128
    assert SearchSpace.default().baseline_params()["layers"] == 1


def test_kernel_size_may_be_given_per_block() -> None:
    space = SearchSpace(
        conv_layers=[0, 3],
        filters={"per_layer": [8, 16, 8]},
        kernel_size={"per_layer": True, "choices": [3, 5, 8]},
        pool=0,
    ).for_input((1, 32))[0]
    assert space.conv["kernel_size"] == PerLayer(each=Choice((3, 5, 8)), key="kernel_size")
    assert SearchSpace.from_dict(space.to_dict()) == space
    params = {"conv_layers": 2, "kernel_size_1": 8, "kernel_size_2": 3}
    params |= {"batch_norm": True, "global_pool": True, **_all_fixed()}
    config = space.config_from_params(params)
    assert (config.filters, config.kernel_size) == ((8, 16), (8, 3))
    names = {name for name, _, _ in space._sampled()}
    assert {"kernel_size_1", "kernel_size_2", "kernel_size_3"} <= names
    with pytest.raises(SpaceError, match=r"kernel_size.per_layer has 2 entries but conv_layers"):
        SearchSpace(conv_layers=[0, 3], kernel_size={"per_layer": [3, 5]})
    with pytest.raises(SpaceError, match=r"kernel_size.per_layer\[1\] must be in \[1, 64\]"):
        SearchSpace(conv_layers=2, kernel_size={"per_layer": [3, 0]})


def _all_fixed() -> dict[str, Any]:
    """The Optuna params of the default dense keys at one point (a config_from_params helper)."""
    return {
        "layers": 0,
        "units": 64,
        "dropout": 0.0,
        "activation": "relu",
        "loss": "categorical_crossentropy",
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "batch_size": 16,
    }


def test_the_default_space_of_signals_holds_the_fcn_and_starts_there() -> None:
    fitted, notes = SearchSpace.default().for_input((1, 150))
    assert notes == [] and fitted.input_shape == (1, 150)
    assert {k: fitted.conv[k].to_plain() for k in SearchSpace.CONV_PARAM_KEYS} == {
        "conv_layers": {"low": 0, "high": 3},
        "filters": {"per_layer": True, "low": 16, "high": 256, "log": True},
        "kernel_size": {"per_layer": True, "choices": [3, 5, 8]},
        "pool": [0, 2],
        "batch_norm": [True, False],
        "global_pool": [True, False],
    }
    first = fitted.baseline_params()
    assert first == {
        "layers": 0,
        "units": 128,
        "dropout": 0.0,
        "activation": "relu",
        "loss": "categorical_crossentropy",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 16,
        "conv_layers": 3,
        "filters_1": 128,
        "filters_2": 256,
        "filters_3": 128,
        "kernel_size_1": 8,
        "kernel_size_2": 5,
        "kernel_size_3": 3,
        "pool": 0,
        "batch_norm": True,
        "global_pool": True,
    }
    assert fitted.config_from_params(first) == FCN_CONFIG
    # the params are those of a trial Optuna could draw from the space (each inside its
    # distribution), and so are a neighbour's
    study = optuna.create_study()
    study.enqueue_trial(first)
    trial = study.ask()
    assert fitted.suggest(trial) == FCN_CONFIG and trial.params == first
    neighbour = first | {"conv_layers": 2, "kernel_size_1": 5, "pool": 2, "layers": 1}
    assert fitted.config_from_params(neighbour).short().startswith("conv2x[128,256] k=5 pool=2")
    # the shape travels with the fitted space (a worker's copy, the task's fitting)
    assert pickle.loads(pickle.dumps(fitted)).baseline_params() == first
    assert fitted.for_task("classification")[0].baseline_params() == first
    # or is given: an unfitted copy of the same space, told the shape
    plain = SearchSpace.from_dict(fitted.to_dict())
    assert plain.input_shape is None and plain.baseline_params(input_shape=(1, 150)) == first
    assert plain.baseline_params()["layers"] == 1  # no shape: the textbook


def test_the_fcn_is_sized_to_a_budget_by_its_width() -> None:
    from dltune.space.baseline import signal_baseline

    fitted, _ = SearchSpace.default().for_input((3, 40))
    small = fitted.config_from_params(fitted.baseline_params(width=0.25))
    assert small.filters == (32, 64, 32) and small.kernel_size == (8, 5, 3)
    tiny = fitted.config_from_params(fitted.baseline_params(width=0.01))
    assert tiny.filters == (16, 16, 16)  # cut to the space's range
    assert signal_baseline(0.5)["filters"].values == (64, 128, 64)
    with pytest.raises(ValueError, match="width"):
        signal_baseline(0)
    # a space of shared filters and kernels, without batch_norm: the nearest of each
    narrow, _ = SearchSpace(
        filters=[16, 32, 64], kernel_size=[3, 7], batch_norm=False, pool=2
    ).for_input((1, 64))
    config = narrow.config_from_params(narrow.baseline_params())
    assert config.filters == (64, 64, 64) and config.kernel_size == (7, 7, 7)
    assert (config.pool, config.batch_norm, config.global_pool, config.layers) == (
        2,
        False,
        True,
        0,
    )
    # short signals: as many blocks as the space allows
    short, _ = SearchSpace.default().for_input((1, 5))
    assert short.config_from_params(short.baseline_params()).kernel_size == (8, 5)


def test_configurations_stored_with_one_kernel_size_read_as_before() -> None:
    stored = {
        "layers": 1,
        "units": [16],
        "dropout": 0.0,
        "activation": "relu",
        "loss": "categorical_crossentropy",
        "optimizer": "adam",
        "learning_rate": 0.01,
        "weight_decay": 0.0,
        "batch_size": 32,
        "epochs": 3,
        "conv_layers": 2,
        "filters": [4, 6],
        "kernel_size": 5,
        "pool": 2,
        "batch_norm": False,
        "global_pool": False,
    }
    config = Config.from_dict(stored)
    assert config.kernel_size == (5, 5)
    assert config.to_dict() == stored  # written back as it was read
    assert Config.from_dict(
        {k: v for k, v in stored.items() if k != "kernel_size"}
    ).kernel_size == (
        3,
        3,
    )
    per_block = config.replace(kernel_size=[8, 3])
    assert per_block.to_dict()["kernel_size"] == [8, 3]
    assert Config.from_dict(per_block.to_dict()) == per_block
    assert per_block.replace(conv_layers=3).kernel_size == (8, 8, 8)  # as filters: the first
    assert config.replace(kernel_size=7).kernel_size == (7, 7)
    assert Config(**{**config.__dict__, "kernel_size": 3}).kernel_size == (3, 3)  # an int
    assert "k=8,3" in per_block.short() and "k=5 " in config.short()
    with pytest.raises(ValueError, match="2 conv_layers but 3 kernel sizes"):
        config.replace(kernel_size=[3, 3, 3])


def _trial() -> optuna.trial.Trial:
    return optuna.create_study().ask()
