"""The study loop under successive halving: promotion, brackets, rungs inside an epoch, budgets."""

from __future__ import annotations

import optuna
import pytest

from dltune import tune
from dltune.storage import trial_records
from dltune.storage.schema import RUNGS

SPACE = {
    "layers": [1, 2],
    "units": [8, 16, 32],
    "activation": ["relu", "tanh", "sigmoid"],
    "optimizer": ["adam", "sgd"],
    "loss": "categorical_crossentropy",
    "learning_rate": {"low": 1e-4, "high": 0.3, "log": True},
    "batch_size": [32, 64],
    "epochs": 9,
}


@pytest.fixture
def memory():
    """An in-memory study storage, for the tests of the schedule rather than of storing it
    (SQLite's reads and writes were most of their time). What is about the stored form keeps
    SQLite: the rungs stored as fractions, the resumed study reading its rungs back, the
    workers (and test_tuner.py's population engine under ASHA)."""
    return optuna.storages.InMemoryStorage()


@pytest.mark.parametrize("engine", ["sequential", "population"])
def test_asha_pauses_promotes_and_resumes_trials_where_they_stopped(blobs, memory, engine):
    result = tune(SPACE, blobs, storage=memory, trials=15, seed=1, engine=engine, population=4)
    trials = result.study.trials
    rungs = [t.user_attrs[RUNGS] for t in trials]
    assert all(r["bracket"] == 0 for r in rungs)
    reached = [len(t.intermediate_values) for t in trials]
    # every trial stopped at a rung (1, 3 or 9 epochs) or diverged before one
    states = [r["state"] for r in trial_records(result.study)]
    assert all(n in (1, 3, 9) or s == "diverged" for n, s in zip(reached, states, strict=True))
    assert reached.count(1) > reached.count(9) >= 1  # most stop at the first rung
    for trial, rung in zip(trials, rungs, strict=True):
        # a promoted trial's curve is continuous: epochs 1..n, never restarted
        epochs_run = len(trial.intermediate_values)
        assert sorted(trial.intermediate_values) == list(range(1, epochs_run + 1))
        assert len(trial.user_attrs["train_loss"]) == len(trial.intermediate_values)
        for epochs, value in rung["values"].items():
            if value is not None:
                assert trial.intermediate_values[int(float(epochs))] == pytest.approx(value)
    # trials that were paused and later promoted exist (they reached 3 epochs without being
    # let through at once: promoted but not in the top when they arrived)
    assert any(r["promoted"] >= 0 for r in rungs)
    assert "running" not in states and "paused" not in states
    assert result.best is not None and result.best["best_epoch"] >= 1


def test_hyperband_starts_brackets_at_different_rungs(blobs, memory):
    result = tune(SPACE, blobs, storage=memory, trials=12, seed=0, schedule="hyperband")
    first_rungs = {}
    for trial in result.study.trials:
        rung = trial.user_attrs[RUNGS]
        if rung["values"]:
            first_rungs.setdefault(rung["bracket"], set()).add(min(map(float, rung["values"])))
    assert first_rungs[0] == {1.0}
    assert first_rungs[1] == {3.0}
    assert len(first_rungs) >= 3


def test_rungs_inside_an_epoch_are_stored_as_fractions(blobs, storage_url):
    space = {**SPACE, "min_epochs": 0.25}
    result = tune(
        space, blobs, storage=storage_url, trials=9, seed=0, engine="population", population=4
    )
    firsts = [t.user_attrs[RUNGS]["values"] for t in result.study.trials]
    assert all("0.25" in values for values in firsts)
    # a trial stopped at 0.25 epochs has no whole epoch on its curve: its rung value is
    # stored at step 0, for the sampler
    short = [t for t in result.study.trials if set(t.intermediate_values) == {0}]
    assert short
    for trial in short:
        values = trial.user_attrs[RUNGS]["values"]
        last = values[max(values, key=float)]  # 0.25 or 0.75: the last rung it reached
        assert trial.intermediate_values[0] == pytest.approx(last)


def test_the_epoch_budget_stops_training_where_it_is(blobs, memory):
    result = tune(
        SPACE,
        blobs,
        storage=memory,
        trials=100,
        seed=0,
        epoch_budget=12,
        schedule="none",
        choose="max",  # no share of the budget held back for re-evaluating (test_choice.py)
        cv="holdout",  # a trial's epoch is one member-epoch
    )
    assert 12 <= result.epochs_trained < 13
    states = [r["state"] for r in trial_records(result.study)]
    assert "running" not in states
    last = result.study.trials[-1]
    assert last.user_attrs.get("stopped") == "budget"


def test_the_timeout_ends_running_trials_at_their_next_checkpoint(blobs, storage_url):
    space = {**SPACE, "epochs": 1000, "units": 32, "layers": 1}
    result = tune(space, blobs, storage=storage_url, timeout=2, seed=0, schedule="none", trials=3)
    assert result.seconds < 30  # 1000 epochs would take far longer
    records = trial_records(result.study)
    assert records[0]["state"] == "complete"
    assert result.study.trials[0].user_attrs["stopped"] == "budget"
    assert result.best is not None and result.best["test"] is not None


def test_a_resumed_study_reads_its_rungs_back(blobs, storage_url):
    first = tune(SPACE, blobs, storage=storage_url, study_name="s", trials=6, seed=0)
    again = tune(SPACE, blobs, storage=storage_url, study_name="s", trials=3, seed=0)
    assert len(again.study.trials) == 9
    entries_at_first_rung = sum("1" in t.user_attrs[RUNGS]["values"] for t in again.study.trials)
    assert entries_at_first_rung == 9
    assert first.study.study_name == again.study.study_name


@pytest.mark.slow
def test_two_local_workers_share_one_study_and_its_budget(blobs, storage_url):
    # Its time is the spawned worker's start (importing torch) and its five trials: three
    # epochs rather than nine make each trial shorter without changing what is shared.
    space = {**SPACE, "epochs": 3}
    result = tune(space, blobs, storage=storage_url, trials=10, seed=0, workers=2)
    trials = result.study.trials
    assert len(trials) == 10 and result.trials_run == 10
    workers = [t.user_attrs["worker"] for t in trials]
    assert sorted(set(workers)) == [0, 1] and workers.count(1) == 5
    # seeded apart: the two workers did not propose the same configurations
    configs = [json_config(t) for t in trials if not t.user_attrs.get("baseline")]
    assert len(set(configs)) == len(configs)
    states = [r["state"] for r in trial_records(result.study)]
    assert "running" not in states and "paused" not in states
    assert result.best is not None and result.best["test"] is not None


def json_config(trial) -> str:
    import json

    return json.dumps(trial.user_attrs["config"], sort_keys=True)
