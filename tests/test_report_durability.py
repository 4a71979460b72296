"""A finished epoch's report is in storage before the next segment trains: the study loop
gathers this process's writes (storage.own_trials_cache.OwnTrialsCache) and flushes them before each
advance of the engine. Read here from a connection of its own, as another process would."""

from __future__ import annotations

import sqlite3

import pytest

from dltune import tune
from dltune.engine.population import PopulationTrainer
from dltune.engine.sequential import SequentialEngine
from dltune.study.lifecycle import TrialLifecycle

SPACE = {
    "layers": [1, 2],
    "units": [8, 16],
    "optimizer": ["adam", "sgd"],
    "learning_rate": {"low": 1e-3, "high": 0.1, "log": True},
    "batch_size": [32, 64],
    "epochs": 4,
    "min_epochs": 0.5,  # segments inside an epoch: checkpoints between the epochs too
}


@pytest.mark.parametrize("engine", ["sequential", "population"])
def test_every_reported_epoch_is_stored_before_the_next_segment_trains(
    blobs, tmp_path, monkeypatch, engine
):
    path = tmp_path / "durable.db"
    reported: list[tuple[int, int, float]] = []  # (trial number, epoch, value) as reported
    checked: list[int] = []  # how many reports each advance found stored

    report = TrialLifecycle.report

    def remembering(self, number, epoch_report):
        reported.append((number, epoch_report.epoch, epoch_report.val_metric))
        return report(self, number, epoch_report)

    def stored() -> set[tuple[int, int, float]]:
        with sqlite3.connect(path) as connection:
            rows = connection.execute(
                "SELECT t.number, v.step, v.intermediate_value FROM trial_intermediate_values v"
                " JOIN trials t ON t.trial_id = v.trial_id"
            ).fetchall()
        return set(rows)

    cls = SequentialEngine if engine == "sequential" else PopulationTrainer
    advance = cls.advance

    def checking(self, on_epoch=None):
        missing = set(reported) - stored()
        assert not missing, f"reported but not in storage when the next segment trains: {missing}"
        checked.append(len(reported))
        return advance(self, on_epoch)

    monkeypatch.setattr(TrialLifecycle, "report", remembering)
    monkeypatch.setattr(cls, "advance", checking)
    result = tune(
        SPACE,
        blobs,
        storage=f"sqlite:///{path}",
        trials=6,
        seed=0,
        engine=engine,
        population=3,
        cv="holdout",  # the engine itself, not a trial's folds over it (test_folds.py)
    )
    assert result.trials_run == 6
    assert len(checked) > 6 and checked[-1] > 0  # many advances, after reports
    assert set(reported) <= stored()  # and all of them at the end
