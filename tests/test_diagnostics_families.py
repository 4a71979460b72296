"""Every diagnostic on every family: the dense network, convolutional networks and a user's
build(hp), each stored as dltune stores it (a user build's configuration keeps dltune's network
keys as placeholders: layers 0, activation linear). Each diagnostic reads what every family
stores and its advice names only what the family has; and no diagnostic proposes a value its
key's rule (space.rules) does not allow, walked over every key at both ends of its range."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from dltune.analysis import analyze, load_trials
from dltune.analysis.diagnostics import (
    diagnose,
    divergence,
    edge_of_space,
    linear_model,
    overfitting,
    slow_learning,
    underfitting,
    wasted_budget,
)
from dltune.space.rules import CONV_PARAM_KEYS, PARAM_KEYS, value_rule

from .synthetic_studies import (
    DEFAULT_SPACE,
    Run,
    config,
    falling_loss,
    in_memory,
    overfitting_runs,
    rising,
)

FAMILIES = ("dense", "conv", "user")
CONV_SPACE = {
    **DEFAULT_SPACE,
    "layers": {"low": 0, "high": 3},
    "conv_layers": {"low": 0, "high": 3},
    "filters": {"low": 8, "high": 64, "log": True},
    "kernel_size": [3, 5],
    "pool": 2,
    "batch_norm": [False, True],
    "global_pool": [False, True],
}
# A user build's study: the space's network keys are fixed placeholders, as dltune stores them
USER_SPACE = {
    **DEFAULT_SPACE,
    "layers": 1,
    "units": 1,
    "dropout": 0.0,
    "activation": "linear",
    "conv_layers": 0,
}
SPACES = {"dense": DEFAULT_SPACE, "conv": CONV_SPACE, "user": USER_SPACE}
TEN_CLASSES = {"classes": 10}


def family_config(family: str, own: dict[str, Any] | None = None, **changes: Any) -> dict:
    """A configuration of `family` as dltune stores it: the dense network's; convolutional
    blocks straight to the output layer (the FCN's form); a user build's own values (`own`)
    with dltune's placeholders for the network keys."""
    if family == "dense":
        return config(**changes)
    if family == "conv":
        blocks = {"conv_layers": 2, "filters": [16, 16], "kernel_size": 3, "pool": 2}
        return config(**{"layers": 0, **blocks, "batch_norm": True, "global_pool": True, **changes})
    placeholders = {"layers": 0, "dropout": 0.0, "activation": "linear"}
    return config(**{**placeholders, **changes}, model={"width": 32, **(own or {})})


def study_of(family: str, runs: list[Run], space: dict | None = None, **kwargs: Any):
    return load_trials(in_memory(runs, space=space or SPACES[family], data=TEN_CLASSES, **kwargs))


# ---- divergence ----


def diverging_runs(family: str, stored_as: str = "pruned") -> list[Run]:
    """SGD at eight rates: from 0.3 up, at chance after one epoch with a finite training loss
    1.5 times ln 10 (stored as `stored_as`: what the scheduler made of it before the engines
    applied the rule); Adam never diverging; one slow SGD run at chance with a fresh network's
    loss (not divergence)."""
    runs = []
    for lr in (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8):
        c = family_config(family, optimizer="sgd", learning_rate=lr)
        if lr >= 0.3:
            runs.append(Run(c, [0.1], stored_as, train_loss=[1.5 * math.log(10)], val_loss=[2.5]))
        else:
            runs.append(Run(c, rising(0.85, 6)))
    for lr in (0.001, 0.01, 0.3, 0.8):
        runs.append(Run(family_config(family, optimizer="adam", learning_rate=lr), rising(0.9, 6)))
    slow = family_config(family, optimizer="sgd", learning_rate=1e-4)
    runs.append(Run(slow, [0.1], "pruned", train_loss=[math.log(10)], val_loss=[math.log(10)]))
    return runs


@pytest.mark.parametrize("family", FAMILIES)
def test_a_pruned_run_at_chance_above_a_fresh_networks_loss_counts_as_diverged(family):
    study = study_of(family, diverging_runs(family))
    states = {(t.params["optimizer"], t.params["learning_rate"]): t.state for t in study.trials}
    assert [states["sgd", lr] for lr in (0.3, 0.5, 0.8)] == ["diverged"] * 3
    assert states["sgd", 1e-4] == "pruned"  # a slow start is not divergence
    assert "diverged" not in [states["adam", lr] for lr in (0.3, 0.8)]
    [found] = divergence(study)
    assert found.title == "Every sgd run with learning_rate ≥ 0.3 diverged (3 of 3)"
    assert "The highest learning rate that trained without diverging was 0.2." in found.explanation
    assert all("at chance" in e["note"] and e["epoch"] == 1 for e in found.evidence)
    assert found.proposes == {"learning_rate": 0.3}
    assert analyze(in_memory(diverging_runs(family), data=TEN_CLASSES)).counts["diverged"] == 3


def test_an_older_study_without_its_number_of_classes_counts_only_a_broken_loss():
    study = load_trials(in_memory(diverging_runs("dense")))  # no "classes" stored
    assert not [t for t in study.trials if t.state == "diverged"]


def test_a_trial_the_engines_ended_diverged_says_how():
    study = study_of("conv", diverging_runs("conv", stored_as="diverged"))
    assert {t.diverged_how for t in study.trials if t.state == "diverged"} == {"at chance"}


# ---- overfitting ----


def overfitting_of(family: str, own_dropout: bool = True) -> list[Run]:
    runs = []
    for run in overfitting_runs():
        rate = run.config["dropout"]
        own = {"dropout": rate} if own_dropout else {}
        c = family_config(family, own) if family == "user" else family_config(family)
        if family == "dense":
            c["dropout"] = rate
        runs.append(Run(c, run.curve, train_loss=run.train_loss, val_loss=run.val_loss))
    return runs


@pytest.mark.parametrize(
    ("family", "own_dropout", "named", "not_named"),
    [
        ("dense", True, ["raise dropout to at least 0.4", "use fewer units"], ["filters"]),
        # blocks straight to the output layer: no Dense layer for dropout to act on
        ("conv", True, ["use fewer filters"], ["dropout", "units"]),
        ("user", True, ["raise dropout to at least 0.4", "lower width"], ["units", "filters"]),
        ("user", False, ["raise weight_decay"], ["dropout", "units", "filters"]),
    ],
)
def test_overfitting_is_found_in_every_family_and_its_fix_names_only_its_knobs(
    family, own_dropout, named, not_named
):
    runs = overfitting_of(family, own_dropout)
    if family == "user" and not own_dropout:
        for run in runs:
            run.config["model"] = {"blocks": 2}  # a build with no width or dropout of its own
    [found] = overfitting(study_of(family, runs))
    assert found.title.startswith("3 of 6 runs of 4+ epochs overfitted, from epoch 5")
    for text in named:
        assert text in found.suggestion
    for word in not_named:
        assert word not in found.suggestion


# ---- slow learning ----


def slow_runs(family: str) -> list[Run]:
    """Sigmoid with mean squared error and SGD below 1e-3, each lagging after one epoch."""
    runs = []
    for i in range(4):
        c = family_config(family, activation="sigmoid", loss="mean_squared_error")
        runs.append(Run(c, rising(0.9, 6, start=0.2 + 0.01 * i)))
        slow = family_config(family, optimizer="sgd", learning_rate=1e-4 * (i + 1))
        runs.append(Run(slow, rising(0.9, 6, start=0.15 + 0.01 * i)))
        runs.append(Run(family_config(family), rising(0.95, 6, start=0.85 + 0.01 * i)))
    return runs


@pytest.mark.parametrize("family", FAMILIES)
def test_slow_learning_is_found_in_every_family_where_its_cause_applies(family):
    titles = [d.title for d in slow_learning(study_of(family, slow_runs(family)))]
    assert any("learning rates below 1e-3 with sgd or adagrad" in t for t in titles)
    sigmoid = any("sigmoid or tanh with mean squared error" in t for t in titles)
    # a user's build ignores the space's activation: its placeholder is no cause
    assert sigmoid == (family != "user")


# ---- underfitting ----


@pytest.mark.parametrize(
    ("family", "capacity"),
    [("dense", "(units, layers)"), ("conv", "(filters, conv_layers)"), ("user", "(width)")],
)
def test_underfitting_names_the_capacity_keys_of_the_family(family, capacity):
    runs = [
        Run(family_config(family, learning_rate=1e-4 * (i + 1)), rising(0.7, 9)) for i in range(6)
    ]
    still = [0.3 + 0.05 * e for e in range(9)]  # climbing to its last epoch
    loss = falling_loss(9, start=1.0, end=0.8)
    runs.append(Run(family_config(family), still, train_loss=loss, val_loss=loss))
    [found] = underfitting(study_of(family, runs))
    assert f"add capacity {capacity}" in found.suggestion


# ---- wasted budget ----


@pytest.mark.parametrize("family", FAMILIES)
def test_wasted_budget_is_found_in_every_family(family):
    runs = [
        Run(family_config(family, optimizer=opt), rising(score, epochs))
        for i in range(6)
        for opt, score, epochs in (("adam", 0.9 + 0.001 * i, 9), ("adagrad", 0.5, 12))
    ]
    found = wasted_budget(study_of(family, runs))
    assert found and "optimizer = adagrad" in found[0].title


# ---- the linear model ----


def linear_against_convolutions(tie: bool) -> list[Run]:
    linear = [
        Run(config(layers=0, learning_rate=10 ** (-3 + i / 3)), rising(0.9 - 0.01 * i, 6))
        for i in range(4)
    ]
    conv_top = 0.9 if tie else 0.98
    conv = [
        Run(family_config("conv", learning_rate=10 ** (-3 + i / 3)), rising(conv_top - 0.01 * i, 6))
        for i in range(4)
    ]
    return linear + conv


def test_convolutions_that_beat_the_linear_model_keep_their_family_in_the_advice():
    [found] = linear_model(study_of("conv", linear_against_convolutions(tie=False)))
    assert found.title.startswith("Networks beat the linear model")
    assert "conv_layers from 1" in found.suggestion
    assert not re.search(r"(?<!conv_)layers from 1", found.suggestion)
    assert found.proposes == {"conv_layers": 1}


def test_a_linear_model_as_good_as_convolutions_is_fixed_by_both_keys():
    [found] = linear_model(study_of("conv", linear_against_convolutions(tie=True)))
    assert "fix layers: 0 in the space and conv_layers: 0" in found.suggestion
    assert found.proposes == {"layers": 0, "conv_layers": 0}


def test_a_users_build_is_never_read_as_the_linear_model():
    """Its configurations hold layers 0 and conv_layers 0 as placeholders."""
    runs = [
        Run(family_config("user", learning_rate=10 ** (-3 + i / 3)), rising(0.9 - 0.02 * i, 6))
        for i in range(6)
    ]
    space = {**USER_SPACE, "layers": {"low": 0, "high": 3}}
    assert linear_model(study_of("user", runs, space=space)) == []


# ---- the edge of the space ----


@pytest.mark.parametrize("family", FAMILIES)
def test_a_best_learning_rate_at_the_top_of_its_range_says_how_far_to_widen_it(family):
    runs = [
        Run(family_config(family, learning_rate=lr), rising(0.5 + 0.4 * i / 7, 9))
        for i, lr in enumerate((1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 0.97))
    ]
    found = edge_of_space(study_of(family, runs))
    [lr] = [d for d in found if "learning_rate" in d.title]
    assert lr.suggestion == "Widen the range of learning_rate above 1 (up to 10)."
    assert lr.proposes == {"learning_rate": 10.0}


def test_no_convolutions_among_the_best_says_what_it_means_not_widen_below_zero():
    """The issue's case: conv_layers 0 is the key's floor; there is nothing below it."""
    runs = [
        Run(family_config("dense", conv_layers=0, learning_rate=1e-3 * (i + 1)), rising(0.95, 6))
        for i in range(5)
    ] + [Run(family_config("conv", learning_rate=1e-3 * (i + 1)), rising(0.8, 6)) for i in range(5)]
    found = edge_of_space(study_of("conv", runs))
    [limit] = [d for d in found if "conv_layers" in d.suggestion]
    assert limit.kind == "limit"
    assert limit.title == "All 3 best trials used no convolutions: the data may not need them"
    assert "Widen" not in limit.suggestion and "fix conv_layers: 0" in limit.suggestion
    assert "cannot go below 0" in limit.explanation
    assert all(
        "Widen the range of conv_layers" not in d.suggestion
        for d in diagnose(study_of("conv", runs))
    )


def test_a_users_build_is_not_judged_by_the_spaces_ignored_network_keys():
    space = {**DEFAULT_SPACE, "dropout": {"low": 0.0, "high": 0.5}, "layers": {"low": 0, "high": 3}}
    runs = [
        Run(family_config("user", {"dropout": 0.45}, learning_rate=1e-3 * (i + 1)), rising(0.9, 6))
        for i in range(8)
    ]
    found = edge_of_space(study_of("user", runs, space=space))
    assert not [d for d in found if set(d.proposes) & {"dropout", "layers", "units"}]


# ---- no suggestion outside a key's rule: every key, both ends ----

NUMERIC_KEYS = [
    k for k in (*PARAM_KEYS, *CONV_PARAM_KEYS) if value_rule(k).kind in ("int", "float")
]


def _ranges(key: str, end: str) -> list[dict[str, Any]]:
    """Ranges of `key` whose `end` is the key's own limit (or, where the rule has none, far
    out), and one whose end lies inside what the key allows."""
    rule = value_rule(key)
    integer = rule.kind == "int"
    if end == "low":
        floor = rule.low if not rule.low_open else 1e-8
        at_floor = {"low": floor, "high": floor + (8 if integer else 0.5)}
        return [at_floor, {"low": 2, "high": 22} if integer else {"low": 0.05, "high": 0.5}]
    ceiling = rule.high if math.isfinite(rule.high) else 1e6
    if rule.high_open:
        ceiling = rule.high - 0.01
    top = int(ceiling) if integer else ceiling
    at_ceiling = {"low": top - (8 if integer else 0.5), "high": top}
    return [at_ceiling, {"low": 1, "high": 12} if integer else {"low": 0.01, "high": 0.5}]


def _study_at(key: str, spec: dict[str, Any], end: str):
    """Twelve trials spread over `spec`, the better the nearer `end`; the best three at it."""
    low, high = spec["low"], spec["high"]
    integer = value_rule(key).kind == "int"
    runs = []
    for i in range(12):
        share = min(1.0, i / 9) if end == "high" else 1 - min(1.0, i / 9)
        value: Any = low + (high - low) * share
        value = round(value) if integer else value
        changes = _config_of(key, value)
        runs.append(Run(family_config(changes.pop("family"), **changes), rising(0.5 + 0.04 * i, 6)))
    space = {**CONV_SPACE, key: spec}
    return study_of("conv", runs, space=space)


def _config_of(key: str, value: Any) -> dict[str, Any]:
    """A configuration in which `key` takes `value` (the block keys need blocks, units and
    dropout a Dense layer)."""
    if key in ("filters",):
        return {"family": "conv", "filters": [value, value]}
    if key in ("kernel_size", "pool"):
        return {"family": "conv", key: value}
    if key == "conv_layers":
        return {"family": "conv", "conv_layers": value, "filters": [16] * value, "kernel_size": 3}
    if key == "units":
        return {"family": "dense", "units": [value]}
    if key == "layers":
        return {"family": "dense", "layers": value, "units": [64] * value}
    return {"family": "dense", key: value}


@pytest.mark.parametrize("end", ["low", "high"])
@pytest.mark.parametrize("key", NUMERIC_KEYS)
def test_no_diagnostic_proposes_a_value_outside_the_keys_rule(key, end):
    rule = value_rule(key)
    for spec in _ranges(key, end):
        study = _study_at(key, spec, end)
        found = diagnose(study)
        for d in found:
            for name, value in d.proposes.items():
                assert value_rule(name).allows(value), (key, end, spec, d.title, d.suggestion)
            for said in re.findall(r"(?:up|down) to (-?[\d.e+-]+)", d.suggestion):
                assert rule.allows(float(said)), (key, end, spec, d.suggestion)
        at_limit = spec[end] == (rule.low if end == "low" else rule.high)
        widen = [d for d in found if d.kind == "edge" and key in d.proposes]
        if at_limit:
            assert not widen, (key, end, [d.suggestion for d in widen])
            said = [d for d in found if d.kind == "limit" and key in d.proposes]
            if (key, end) != ("layers", "low"):  # the linear model's finding says that one
                assert said and "Widen" not in said[0].suggestion, (key, end)
        else:
            [reading] = widen
            past = reading.proposes[key]
            assert past < spec["low"] if end == "low" else past > spec["high"]
