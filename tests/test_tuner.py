"""The study loop on a real SQLite storage: trials stored, resumed, interrupted, tested once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dltune.errors import StudyError
from dltune.storage import best_record, trial_records
from dltune.study import ProgressListener, tune

from .helpers import SMALL_SPACE, small_space

SMALL = small_space()


# Under pytest-xdist, with the CLI tests: the session's trained study is then trained once.
TRAINED = pytest.mark.xdist_group("trained")


def test_a_study_stores_each_trial_with_its_curve_and_the_best_with_its_test(blobs, storage_url):
    result = tune(SMALL, blobs, storage=storage_url, trials=4, seed=0, schedule="none")
    assert result.trials_run == 4
    records = trial_records(result.study)
    assert [r["state"] for r in records] == ["complete"] * 4
    for record, trial in zip(records, result.study.trials, strict=True):
        assert record["epochs"] == 3
        assert len(trial.user_attrs["train_loss"]) == 3
        assert record["best_epoch"] in (1, 2, 3)
        assert record["value"] == max(trial.intermediate_values.values())
        assert set(record["params"]) >= {"layers", "units", "learning_rate", "batch_size"}
    best = best_record(result.study)
    assert best == result.best
    assert best["value"] == max(r["value"] for r in records)
    assert best["metric"] == "accuracy"
    assert 0.9 < best["test"] <= 1.0
    # the objective is named where optuna-dashboard reads it, not "Objective 0"
    from dltune.storage import Storage, schema

    assert schema.read_metric_names(Storage.open(storage_url).load_study()) == ["accuracy"]


def test_running_again_continues_the_same_study(blobs, storage_url):
    first = tune(SMALL, blobs, storage=storage_url, trials=2, seed=1, schedule="none")
    second = tune(SMALL, blobs, storage=storage_url, trials=3, seed=1, schedule="none")
    assert second.study.study_name == first.study.study_name
    assert len(second.study.trials) == 5
    # a resumed study with the same seed does not propose the same configurations again
    params = [r["params"] for r in trial_records(second.study)]
    assert params[2:4] != params[0:2]


def _trained_study(folder: Path) -> Any:
    """The session's trained study (conftest's `trained`: `dltune run small.yaml --trials 4
    --seed 0` on digits) in this test's copy of its folder."""
    import optuna

    from dltune.storage import open_storage

    url = f"sqlite:///{folder / 'dltune.db'}"
    return optuna.load_study(study_name="small-digits", storage=open_storage(url))


@TRAINED
def test_the_test_split_is_evaluated_once_per_best_trial(trained_copy):
    from dltune.data import load_data
    from dltune.engine import SequentialTrainer
    from dltune.study.held_out import evaluate_test

    study = _trained_study(trained_copy)
    key = f"test:{best_record(study)['trial']}"
    assert study.user_attrs[key]["metric"] == "accuracy"
    # Once stored, the result is what every later request gets: the split is not touched again
    # (a marker that no evaluation could produce proves it).
    marker = {"value": -1.0, "loss": -1.0, "metric": "accuracy", "how": "marker"}
    study.set_user_attr(key, marker)
    trainer = SequentialTrainer(load_data("digits"), shuffle_seed=0)  # --seed 0
    assert evaluate_test(study, trainer, kept=None) == marker


@TRAINED
def test_a_test_for_a_best_trial_from_an_earlier_run_is_retrained_identically(trained_copy):
    from dltune.data import load_data
    from dltune.engine import SequentialTrainer
    from dltune.study.held_out import evaluate_test

    study = _trained_study(trained_copy)  # trained by an earlier run (the session's)
    key = f"test:{best_record(study)['trial']}"
    in_memory = study.user_attrs[key]
    assert not in_memory["how"].startswith("retrained")  # the run's own, from its weights
    study.set_user_attr(key, None)  # forget it: the weights are not in this process
    trainer = SequentialTrainer(load_data("digits"), shuffle_seed=0)  # --seed 0
    retrained = evaluate_test(study, trainer, kept=None)
    assert retrained["how"].startswith("retrained")
    assert retrained["value"] == in_memory["value"]


@TRAINED
def test_another_dataset_in_the_same_study_is_refused(trained_copy, linear_regression):
    url = f"sqlite:///{trained_copy / 'dltune.db'}"  # study 'small-digits', run on digits
    space = trained_copy / "small.yaml"
    with pytest.raises(StudyError, match=r"was run on data .*study_name=NEW_NAME"):
        tune(space, linear_regression, storage=url, study_name="small-digits", trials=1)


@TRAINED
def test_another_space_in_the_same_study_is_refused(trained_copy):
    url = f"sqlite:///{trained_copy / 'dltune.db'}"  # study 'small-digits', run on digits
    # small.yaml (the space's name is the file's) with one more epoch, and nothing else changed
    space = yaml.safe_load(SMALL_SPACE)
    (trained_copy / "changed").mkdir()
    other = trained_copy / "changed" / "small.yaml"
    other.write_text(yaml.safe_dump({**space, "epochs": space["epochs"] + 1}))
    with pytest.raises(StudyError, match="search space"):
        tune(other, "digits", storage=url, study_name="small-digits", trials=1)


def test_a_diverging_trial_ends_as_diverged_and_the_study_goes_on(blobs, storage_url):
    space = {
        **SMALL,
        "optimizer": "sgd",
        "learning_rate": [1e3, 0.1],
        "activation": "relu",
        "dropout": 0.0,
        "units": 64,
        "layers": 2,
        "batch_size": 32,
        "epochs": 5,
    }
    result = tune(
        space, blobs, storage=storage_url, trials=6, seed=0, sampler="grid", schedule="none"
    )
    states = {r["params"]["learning_rate"]: r["state"] for r in trial_records(result.study)}
    assert states == {1e3: "diverged", 0.1: "complete"}  # the grid is exhausted after two
    diverged = next(r for r in trial_records(result.study) if r["state"] == "diverged")
    assert diverged["diverged_epoch"] >= 1
    assert result.best["params"]["learning_rate"] == 0.1


class _InterruptAt(ProgressListener):
    def __init__(self, trial: int, epoch: int = 2) -> None:
        self.trial = trial
        self.epoch = epoch

    def epoch_done(self, number, report):
        if number == self.trial and report.epoch == self.epoch:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_finished_trials_and_marks_the_running_one_interrupted(blobs, storage_url):
    result = tune(
        SMALL,
        blobs,
        storage=storage_url,
        trials=10,
        seed=0,
        schedule="none",
        progress=_InterruptAt(trial=2),
    )
    assert result.interrupted
    states = [r["state"] for r in trial_records(result.study)]
    assert states == ["complete", "complete", "interrupted"]
    resumed = tune(SMALL, blobs, storage=storage_url, trials=1, seed=0, schedule="none")
    assert [r["state"] for r in trial_records(resumed.study)][:3] == states
    assert len(resumed.study.trials) == 4


def test_a_trial_left_running_by_a_dead_process_becomes_interrupted(
    blobs, storage_url, monkeypatch
):
    import sqlite3

    import optuna

    from dltune.storage import grace_period, open_storage

    # Read when a study starts: beats every second, so a trial silent 3 s is a dead process's.
    monkeypatch.setenv("DLTUNE_HEARTBEAT_SECONDS", "1")
    first = tune(SMALL, blobs, storage=storage_url, study_name="s", trials=1, seed=0)
    # A process that asked for a trial, beat once, then died: its last beat lies further back
    # than the grace period (moved back in the database, rather than waited for).
    study = optuna.load_study(study_name="s", storage=open_storage(storage_url))
    orphan = study.ask()
    study._storage.record_heartbeat(orphan._trial_id)
    silent = f"-{grace_period() + 1.1} seconds"
    with sqlite3.connect(storage_url.removeprefix("sqlite:///")) as db:
        moved = db.execute(
            "UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, ?) WHERE trial_id = ?",
            (silent, orphan._trial_id),
        )
        assert moved.rowcount == 1
    resumed = tune(SMALL, blobs, storage=storage_url, study_name="s", trials=1, seed=0)
    states = [r["state"] for r in trial_records(resumed.study)]
    assert states == ["complete", "interrupted", "complete"]
    assert first.best["trial"] == 0


def test_grid_sampler_needs_lists(blobs, storage_url):
    from dltune.errors import SpaceError

    with pytest.raises(SpaceError, match="learning_rate"):
        tune(SMALL, blobs, storage=storage_url, trials=1, sampler="grid")


def test_a_regression_study_minimizes_rmse(linear_regression, storage_url):
    space = {
        **SMALL,
        "loss": ["mean_squared_error", "categorical_crossentropy"],
        "optimizer": "adam",
        "epochs": 5,
    }
    result = tune(space, linear_regression, storage=storage_url, trials=2, seed=0)
    assert result.best["metric"] == "rmse"
    assert result.study.direction.name == "MINIMIZE"
    assert any("categorical_crossentropy" in note for note in result.notes)
    assert all(r["params"]["loss"] == "mean_squared_error" for r in trial_records(result.study))


def test_the_population_engine_finds_what_the_sequential_engine_finds(blobs):
    import optuna

    # About the engines, not the storage: in memory (SQLite's reads and writes were three
    # quarters of this test's time).
    grid = {
        **SMALL,
        "learning_rate": [0.003, 0.03],
        "units": [16, 24],
        "dropout": [0.0, 0.2],
        "layers": [1, 2],
        "optimizer": ["adam", "sgd"],
        "activation": "relu",
        "batch_size": 32,
    }
    results = {}
    for engine in ("sequential", "population"):
        result = tune(
            grid,
            blobs,
            storage=optuna.storages.InMemoryStorage(),
            trials=32,
            seed=0,
            sampler="grid",
            schedule="none",
            engine=engine,
            population=8,
        )
        records = trial_records(result.study)
        assert len(records) == 32 and all(r["state"] == "complete" for r in records)
        results[engine] = {json_key(r["params"]): r["value"] for r in records}
        results[engine + "-best"] = result.best
    assert results["sequential"].keys() == results["population"].keys()
    for key, value in results["sequential"].items():
        assert results["population"][key] == pytest.approx(value, abs=1e-6), key
    assert results["population-best"]["value"] == pytest.approx(
        results["sequential-best"]["value"], abs=1e-6
    )


def json_key(params):
    import json

    return json.dumps(params, sort_keys=True)


def test_the_population_engine_prunes_refills_and_survives_ctrl_c(blobs, storage_url):
    space = {**SMALL, "epochs": 9}
    result = tune(
        space,
        blobs,
        storage=storage_url,
        trials=12,
        seed=0,
        engine="population",
        population=4,
        schedule="asha",
    )
    states = [r["state"] for r in trial_records(result.study)]
    assert len(states) == 12 and "pruned" in states and "complete" in states
    interrupted = tune(
        space,
        blobs,
        storage=storage_url,
        trials=12,
        seed=0,
        engine="population",
        population=4,
        progress=_InterruptAt(trial=14, epoch=1),
    )
    assert interrupted.interrupted
    before = states
    states = [r["state"] for r in trial_records(interrupted.study)]
    assert states[:12] == before
    assert "interrupted" in states[12:]
    assert "running" not in states


def test_a_new_study_starts_with_the_baseline_and_can_do_without(blobs, tmp_path):
    first = tune(SMALL, blobs, storage=f"sqlite:///{tmp_path / 'a.db'}", trials=2, seed=0)
    trial = first.study.trials[0]
    assert trial.user_attrs.get("baseline") is True
    assert trial.params["units"] == 32 and trial.params["activation"] == "relu"  # nearest
    again = tune(SMALL, blobs, storage=f"sqlite:///{tmp_path / 'a.db'}", trials=1, seed=0)
    assert sum(bool(t.user_attrs.get("baseline")) for t in again.study.trials) == 1
    plain = tune(
        SMALL, blobs, storage=f"sqlite:///{tmp_path / 'b.db'}", trials=1, seed=0, baseline=False
    )
    assert "baseline" not in plain.study.trials[0].user_attrs
