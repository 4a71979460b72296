"""dltune.storage.internals, function by function, against real storages: with the cache it
imports lazily (own_trials_cache.py), the only code that touches Optuna's private API, so an
Optuna upgrade that changes it fails here, by name."""

from __future__ import annotations

import datetime
import json
import sqlite3
import subprocess
import sys

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


# ---- OwnTrialsCache: this process's running trials in memory, their writes gathered ----------


def stored(db_study, sql, *args):
    """Rows read from the database file over a connection of its own (another process's view)."""
    with sqlite3.connect(db_study.db_path) as connection:
        return connection.execute(sql, args).fetchall()


def test_use_own_trials_cache_takes_a_database_and_leaves_a_journal_and_a_memory(
    db_study, journal_study
):
    memory = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    assert internals.use_own_trials_cache(db_study)
    assert internals.use_own_trials_cache(db_study)  # twice: the same cache
    assert not internals.use_own_trials_cache(journal_study)
    assert not internals.use_own_trials_cache(memory)
    assert isinstance(internals.backend_of(db_study), optuna.storages.RDBStorage)


# Run in a fresh interpreter (this one has imported everything): what each step has imported.
LAZINESS_PROBE = """
import json, sys
loaded = lambda: sorted(m for m in sys.modules if m.split(".")[0] in ("optuna", "sqlalchemy")
                        or m == "dltune.storage.own_trials_cache")
seen = {}
from dltune.storage import internals, open_storage
seen["import"] = loaded()
import optuna
journal = optuna.create_study(storage=open_storage(sys.argv[1] + "/s.log"))
internals.use_own_trials_cache(journal)
internals.flush_trial_writes(journal)
seen["journal"] = "dltune.storage.own_trials_cache" in sys.modules
database = optuna.create_study(storage=open_storage("sqlite:///" + sys.argv[1] + "/s.db"))
seen["database"] = internals.use_own_trials_cache(database)
seen["cache"] = "dltune.storage.own_trials_cache" in sys.modules
print(json.dumps(seen))
"""


def test_the_cache_module_is_imported_only_for_a_database_study(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", LAZINESS_PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(run.stdout.splitlines()[-1])
    assert seen == {"import": [], "journal": False, "database": True, "cache": True}


def test_use_own_trials_cache_is_off_with_the_plain_switch(db_study, monkeypatch):
    monkeypatch.setenv(internals.PLAIN_ENV, "1")
    before = internals.storage_of(db_study)
    assert not internals.use_own_trials_cache(db_study)
    assert internals.storage_of(db_study) is before


def test_an_own_trials_writes_reach_storage_at_the_flush_in_one_go(db_study):
    internals.use_own_trials_cache(db_study)
    trial = db_study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("config", {"units": (8, 16)})
    trial.report(0.5, 1)
    trial.report(0.7, 2)
    # This process sees them at once, as the database will return them (a tuple is a list)...
    mine = db_study.get_trials(deepcopy=False)[0]
    assert mine.params == {"x": x} and mine.intermediate_values == {1: 0.5, 2: 0.7}
    assert mine.user_attrs == {"config": {"units": [8, 16]}}
    # ... another only after the flush.
    assert stored(db_study, "SELECT step FROM trial_intermediate_values") == []
    internals.flush_trial_writes(db_study)
    assert stored(db_study, "SELECT step, intermediate_value FROM trial_intermediate_values") == [
        (1, 0.5),
        (2, 0.7),
    ]
    assert stored(db_study, "SELECT param_name FROM trial_params") == [("x",)]
    assert stored(db_study, "SELECT value_json FROM trial_user_attributes") == [
        ('{"units": [8, 16]}',)
    ]
    internals.flush_trial_writes(db_study)  # nothing gathered: nothing written


def test_a_tell_writes_what_was_gathered_first_and_the_told_trial_reads_as_stored(db_study):
    internals.use_own_trials_cache(db_study)
    trial = db_study.ask()
    trial.report(0.25, 1)
    trial.set_user_attr("best_epoch", 1)
    db_study.tell(trial, 0.25)
    assert stored(db_study, "SELECT state FROM trials") == [("COMPLETE",)]
    assert stored(db_study, "SELECT step FROM trial_intermediate_values") == [(1,)]
    told = internals.read_trial(db_study, trial)
    assert told.state == optuna.trial.TrialState.COMPLETE and told.value == 0.25
    assert told.datetime_complete is not None and told.user_attrs == {"best_epoch": 1}
    assert [t.number for t in db_study.get_trials(deepcopy=False)] == [0]


def test_other_processes_trials_are_read_again_and_own_ones_kept(db_study):
    internals.use_own_trials_cache(db_study)
    other = optuna.load_study(study_name="s", storage=internals.backend_of(db_study))
    theirs = other.ask()  # another process's running trial
    mine = db_study.ask()
    theirs.report(0.1, 1)  # written by the other process, seen on our next read
    mine.report(0.9, 1)  # ours: seen at once, not in the database yet
    by_number = {t.number: t for t in db_study.get_trials(deepcopy=False)}
    assert by_number[theirs.number].intermediate_values == {1: 0.1}
    assert by_number[mine.number].intermediate_values == {1: 0.9}
    other.tell(theirs, 0.1)
    states = {t.number: t.state for t in db_study.get_trials(deepcopy=False)}
    assert states == {
        theirs.number: optuna.trial.TrialState.COMPLETE,
        mine.number: optuna.trial.TrialState.RUNNING,
    }


def test_an_enqueued_trial_asked_here_becomes_ours(db_study):
    internals.use_own_trials_cache(db_study)
    db_study.enqueue_trial({"x": 0.5}, user_attrs={"seed": 3})
    trial = db_study.ask()
    assert trial.suggest_float("x", 0.0, 1.0) == 0.5 and trial.user_attrs["seed"] == 3
    trial.report(0.4, 1)
    assert stored(db_study, "SELECT step FROM trial_intermediate_values") == []
    internals.flush_trial_writes(db_study)
    assert stored(db_study, "SELECT step FROM trial_intermediate_values") == [(1,)]


def test_a_flush_whose_trial_was_finished_elsewhere_still_writes_the_others(db_study):
    internals.use_own_trials_cache(db_study)
    failed, kept = db_study.ask(), db_study.ask()
    failed.report(0.1, 1)
    kept.report(0.2, 1)
    # Another process took `failed` for dead and failed it (a stale heartbeat).
    other = optuna.load_study(study_name="s", storage=internals.backend_of(db_study))
    internals.fail_trial(other, internals.trial_id(failed))
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        internals.flush_trial_writes(db_study)
    assert stored(db_study, "SELECT trial_id FROM trial_intermediate_values") == [
        (internals.trial_id(kept),)
    ]
    # From now on the failed trial is read from the database, as it stands there.
    states = {t.number: t.state for t in db_study.get_trials(deepcopy=False)}
    assert states[failed.number] == optuna.trial.TrialState.FAIL


def test_an_incompatible_distribution_is_refused_at_once(db_study):
    internals.use_own_trials_cache(db_study)
    db_study.ask().suggest_float("x", 0.0, 1.0)
    with pytest.raises(ValueError, match="different distribution kind"):
        db_study.ask().suggest_categorical("x", ["a", "b"])
    # Another process, whose cache has not seen x yet, checks against the stored trials.
    internals.flush_trial_writes(db_study)
    other = optuna.load_study(study_name="s", storage=internals.backend_of(db_study))
    internals.use_own_trials_cache(other)
    with pytest.raises(ValueError, match="different distribution kind"):
        other.ask().suggest_categorical("x", ["a", "b"])


def test_record_optuna_heartbeats_writes_one_row_per_trial(db_study, journal_study):
    internals.use_own_trials_cache(db_study)
    trials = [db_study.ask(), db_study.ask()]
    internals.record_optuna_heartbeats(db_study, trials)
    internals.record_optuna_heartbeats(db_study, trials)  # again: the rows are updated
    rows = stored(db_study, "SELECT trial_id FROM trial_heartbeats ORDER BY trial_id")
    assert rows == [(internals.trial_id(t),) for t in trials]


@pytest.fixture
def postgres_study():
    """A study in a fresh PostgreSQL database (tests marked postgres: .ci/with-postgres)."""
    import uuid

    from .test_storage_many import _admin, _admin_url, _with_database

    admin = _admin_url()
    name = f"dltune_t_{uuid.uuid4().hex[:10]}"
    _admin(admin, f'CREATE DATABASE "{name}"')
    url = _with_database(admin, name)
    try:
        study = optuna.create_study(storage=open_storage(url), study_name="s")
        yield study
        internals.backend_of(study).engine.dispose()
    finally:
        _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_own_trials_cache_on_postgresql_writes_at_the_flush_and_reads_back(postgres_study):
    study = postgres_study
    assert internals.use_own_trials_cache(study)
    other = optuna.load_study(study_name="s", storage=internals.backend_of(study))  # plain
    trial = study.ask()
    trial.suggest_int("units", 8, 64)
    trial.set_user_attr("rungs", {"values": {"1": 0.5}})
    trial.set_user_attr("rungs", {"values": {"1": 0.5, "3": 0.6}})  # the last one is kept
    trial.report(0.5, 1)
    trial.report(0.6, 3)
    assert other.trials[0].intermediate_values == {}
    internals.flush_trial_writes(study)
    seen = other.trials[0]
    assert seen.intermediate_values == {1: 0.5, 3: 0.6} and "units" in seen.params
    assert seen.user_attrs["rungs"] == {"values": {"1": 0.5, "3": 0.6}}
    trial.report(0.7, 4)
    internals.record_optuna_heartbeats(study, [trial])
    study.tell(trial, 0.7)
    seen = other.trials[0]
    assert seen.state == optuna.trial.TrialState.COMPLETE and seen.intermediate_values[4] == 0.7
    assert study.best_trial.number == 0 and study.trials[0].value == 0.7
