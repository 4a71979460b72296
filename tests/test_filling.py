"""Populations that fill (dltune.study.filling): new trials asked in cohorts of one shape."""

from __future__ import annotations

import collections

import optuna
import pytest

from dltune import tune
from dltune.space import SearchSpace
from dltune.study.filling import ShapeFiller, fixing, shape_of


def test_the_shape_is_the_batch_size_and_the_networks_shape_only() -> None:
    params = {
        "layers": 2,
        "units_1": 64,
        "units_2": 32,
        "batch_size": 32,
        "learning_rate": 0.01,
        "conv_layers": 1,
        "filters_1": 16,
        "dropout": 0.2,
        "kernel_size": 3,
    }
    assert dict(shape_of(params)) == {
        "layers": 2,
        "units_1": 64,
        "units_2": 32,
        "batch_size": 32,
        "conv_layers": 1,
        "filters_1": 16,
        "kernel_size": 3,
    }


def test_a_cohort_is_a_free_leader_and_followers_of_its_shape_while_it_trains() -> None:
    filler = ShapeFiller(cohort=3)
    leader = {"layers": 1, "units": 64, "batch_size": 32, "learning_rate": 0.1}
    assert filler.fixed_params([]) is None  # nothing asked yet: the sampler chooses
    filler.asked(leader, None)
    fixed = filler.fixed_params([leader])
    assert fixed == {"layers": 1, "units": 64, "batch_size": 32}
    filler.asked({**leader, "learning_rate": 0.01}, fixed)
    assert filler.fixed_params([leader]) == fixed  # one follower left
    filler.asked({**leader, "learning_rate": 0.001}, fixed)
    assert filler.fixed_params([leader]) is None  # the cohort is full: explore again
    other = {"layers": 3, "units": 16, "batch_size": 256, "learning_rate": 0.5}
    filler.asked(other, None)
    # Every member of the new cohort's shape was pruned already: no bucket to fill.
    assert filler.fixed_params([leader]) is None
    assert (filler.filled, filler.explored) == (2, 2)
    assert "2 trials joined" in (filler.note() or "")


def test_fixing_gives_the_shape_and_samples_the_rest_then_restores_the_sampler() -> None:
    space = SearchSpace.default()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sampler = study.sampler
    fixed = {"layers": 2, "units": 100, "batch_size": 64}
    rates = set()
    for _ in range(4):
        with fixing(study, fixed):
            trial = study.ask()
            config = space.suggest(trial)
        assert (config.layers, config.units, config.batch_size) == (2, (100, 100), 64)
        rates.add(config.learning_rate)
        study.tell(trial, 0.5)
    assert len(rates) == 4 and study.sampler is sampler


@pytest.mark.parametrize("cohort", ["4", "1"])
def test_a_population_study_fills_its_buckets_with_configurations_of_the_space(
    storage_url: str, monkeypatch: pytest.MonkeyPatch, cohort: str
) -> None:
    monkeypatch.setenv("DLTUNE_FILL_COHORT", cohort)
    space = SearchSpace.from_dict(
        {"epochs": 2, "layers": [1, 2], "units": {"low": 8, "high": 64, "log": True}}
    )
    result = tune(
        space,
        "digits",
        storage=storage_url,
        trials=12,
        seed=0,
        engine="population",
        population=4,
        workers=1,
        baseline=False,
        cv="holdout",  # configurations of one shape asked together: one trial, one member
    )
    trials = result.study.trials
    assert len(trials) == 12
    for trial in trials:  # every one inside the space, stored like any other
        assert space.config_from_params(trial.params) is not None
        for name, value in trial.params.items():
            assert trial.distributions[name]._contains(
                trial.distributions[name].to_internal_repr(value)
            )
    shapes = collections.Counter(shape_of(t.params) for t in trials)
    if cohort == "4":  # cohorts of up to four (one ends early when all of it was pruned)
        assert max(shapes.values()) == 4 and len(shapes) <= 6
        filled = len(trials) - len(shapes)
        assert any(f"populations filled: {filled} trials" in n for n in result.notes)
    else:
        assert max(shapes.values()) < 4 and not any("filled" in n for n in result.notes)
