"""dltune.storage.internals, function by function, against real storages: the only code that
touches Optuna's private API, so an Optuna upgrade that changes it fails here, by name."""

from __future__ import annotations

import datetime
import sqlite3

import optuna
import pytest

from dltune.storage import internals, open_storage


@pytest.fixture
def db_study(tmp_path):
    """A study in an SQLite file opened as dltune opens it (heartbeats on, under the cache)."""
    url = f"sqlite:///{tmp_path / 'internals.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    study.db_path = tmp_path / "internals.db"  # for the tests that read the file directly
    return study


@pytest.fixture
def journal_study(tmp_path):
    return optuna.create_study(storage=open_storage(str(tmp_path / "s.log")), study_name="s")


def test_storage_of_is_what_the_study_reads_through(db_study):
    trial = db_study.ask()
    storage = internals.storage_of(db_study)
    assert isinstance(storage, optuna.storages.BaseStorage)
    assert storage.get_trial(internals.trial_id(trial)).number == trial.number


def test_backend_of_unwraps_the_cache(db_study, journal_study):
    assert isinstance(internals.backend_of(db_study), optuna.storages.RDBStorage)
    assert isinstance(internals.backend_of(journal_study), optuna.storages.JournalStorage)


def test_trial_id_of_a_live_and_a_frozen_trial(db_study):
    first, second = db_study.ask(), db_study.ask()
    ids = {internals.trial_id(first), internals.trial_id(second)}
    assert len(ids) == 2
    frozen = db_study.get_trials(deepcopy=False)
    assert {internals.trial_id(t) for t in frozen} == ids


def test_database_url_of_a_database_and_of_a_journal(db_study, journal_study):
    assert internals.database_url(db_study) == f"sqlite:///{db_study.db_path}"
    assert internals.database_url(journal_study) is None


def test_read_trial_reads_the_stored_state(db_study):
    trial = db_study.ask()
    db_study.tell(trial, 0.5)
    stored = internals.read_trial(db_study, trial)
    assert stored.state == optuna.trial.TrialState.COMPLETE and stored.value == 0.5


def test_set_trial_system_attr_is_stored(journal_study):
    trial = journal_study.ask()
    internals.set_trial_system_attr(journal_study, trial, "dltune:probe", 1.5)
    assert journal_study.get_trials(deepcopy=False)[0].system_attrs["dltune:probe"] == 1.5


def test_fail_trial_fails_a_running_trial_and_leaves_a_finished_one(db_study):
    running, done = db_study.ask(), db_study.ask()
    db_study.tell(done, 1.0)
    internals.fail_trial(db_study, internals.trial_id(running))
    internals.fail_trial(db_study, internals.trial_id(done))  # finished elsewhere: no error
    states = [t.state for t in db_study.get_trials(deepcopy=False)]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]


def test_heartbeats_enabled_for_databases_only(db_study, journal_study):
    memory = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    assert internals.heartbeats_enabled(db_study)
    assert not internals.heartbeats_enabled(journal_study)
    assert not internals.heartbeats_enabled(memory)


def test_record_optuna_heartbeat_writes_a_heartbeat_row(db_study):
    trial = db_study.ask()
    internals.record_optuna_heartbeat(db_study, trial)
    with sqlite3.connect(db_study.db_path) as connection:
        rows = connection.execute("SELECT trial_id FROM trial_heartbeats").fetchall()
    assert rows == [(internals.trial_id(trial),)]


def test_running_trials_never_beaten_lists_only_old_silent_ones(db_study):
    old_silent, beating, young_silent = db_study.ask(), db_study.ask(), db_study.ask()
    internals.record_optuna_heartbeat(db_study, beating)
    long_ago = datetime.datetime.now() - datetime.timedelta(hours=1)
    with sqlite3.connect(db_study.db_path) as connection:
        connection.execute(
            "UPDATE trials SET datetime_start = ? WHERE trial_id IN (?, ?)",
            (
                long_ago.isoformat(sep=" "),
                internals.trial_id(old_silent),
                internals.trial_id(beating),
            ),
        )
    cutoff = datetime.datetime.now() - datetime.timedelta(minutes=1)
    found = internals.running_trials_never_beaten(db_study, started_before=cutoff)
    assert found == [internals.trial_id(old_silent)]
    assert young_silent.number not in found


def test_running_trials_never_beaten_is_empty_for_a_journal(journal_study):
    journal_study.ask()
    future = datetime.datetime.now() + datetime.timedelta(hours=1)
    assert internals.running_trials_never_beaten(journal_study, started_before=future) == []
