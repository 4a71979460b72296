"""Storage for many writers: PostgreSQL (a server) and a journal file (a shared file system).

The PostgreSQL tests (marker `postgres`) need a server: DLTUNE_TEST_POSTGRES_URL names a database
whose role may create databases and roles (.ci/with-postgres starts such a throwaway server
for CI). Without one they are skipped, unless DLTUNE_REQUIRE_POSTGRES=1 (CI), where they fail.
Each test works in a database of its own, dropped at the end.

The command line runs in this process (tests/helpers.py's `dltune`) but where several processes
on one storage are the point: there two real `python -m dltune.cli run` processes share a study.

Every network wait has a limit: the error tests measure how long a bad URL takes to fail.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dltune.errors import StudyError
from dltune.storage import (
    display_url,
    fail_stale_trials,
    grace_period,
    normalize_url,
    open_storage,
)
from dltune.storage.schema import HEARTBEAT as HEARTBEAT_ATTR
from dltune.storage.schema import TEST_PREFIX
from dltune.study import tune

from .helpers import SMALL_SPACE, Forked, dltune, require_or_skip, small_space

SMALL = small_space(epochs=2)


QUICK = 15  # seconds: a bad storage must be reported within this (connect timeout: 10 s)


def need_driver() -> None:
    """psycopg2 (the extra dltune[postgres]): skipped without it, unless CI requires it."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        require_or_skip(
            "psycopg2 is not installed (pip install 'dltune[postgres]')",
            "DLTUNE_REQUIRE_POSTGRES",
        )


@pytest.fixture
def project(tmp_path: Path, blobs) -> Path:
    """A folder with the small space and the blobs as a .npz file, for `dltune run`."""
    (tmp_path / "small.yaml").write_text(SMALL_SPACE)
    np.savez(tmp_path / "blobs.npz", x=blobs.x_train, y=blobs.y_train)
    return tmp_path


def run_two_together(project: Path, storage: str, trials: tuple[int, int]) -> None:
    """Two `dltune run` processes on one study, started together; both must succeed."""
    args = ["run", "small.yaml", "--data", "blobs.npz", "--study", "shared", "--storage", storage]
    runs = [
        Forked(*args, "--trials", str(n), "--seed", str(i), cwd=project)
        for i, n in enumerate(trials)
    ]
    for run in runs:
        done = run.wait(timeout=240)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"


def assert_shared_without_duplicates(storage: str, asked: int) -> None:
    """Every trial asked was made once, trained once and finished: distinct numbers 0..n-1."""
    import optuna

    study = optuna.load_study(study_name="shared", storage=open_storage(storage))
    trials = study.trials
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(asked)), numbers
    assert all(t.state.is_finished() for t in trials), [t.state for t in trials]
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for t in trials:  # trained once: one curve, no epoch reported twice, at most `epochs` long
        assert len(t.user_attrs["train_loss"]) == len(t.intermediate_values) <= 3
    baselines = [t for t in trials if t.user_attrs.get("baseline")]
    assert len(baselines) <= 2  # enqueued once, unless both processes raced to enqueue it
    assert any(k.startswith(TEST_PREFIX) for k in study.user_attrs)  # the best, tested once


# ---- no server needed -------------------------------------------------------------------


def test_passwords_are_masked_and_file_names_become_urls():
    assert display_url("postgresql://me:s3cret@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert display_url("postgresql+psycopg2://me:s3cret@db/x") == (
        "postgresql+psycopg2://me:***@db/x"
    )
    assert display_url("sqlite:///dltune.db") == "sqlite:///dltune.db"
    assert "s3cret" not in display_url("postgresql://me:s3cret@db:notaport/x")
    assert normalize_url("study.log") == "journal:///study.log"
    assert normalize_url("runs/study.journal") == "journal:///runs/study.journal"
    assert normalize_url("studies.db") == "sqlite:///studies.db"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("nonsense://x", ["not a storage URL", "postgresql://", "journal:///"]),
        ("postgresql://me:s3cret@127.0.0.1:notaport/x", ["cannot be opened", "me:***@"]),
        ("journal:///no/such/folder/study.log", ["does not exist", "create it"]),
    ],
)
def test_a_bad_storage_url_is_a_clear_error(url, words):
    with pytest.raises(StudyError) as error:
        open_storage(url)
    message = str(error.value)
    assert "s3cret" not in message and "\n" not in message
    for word in words:
        assert word in message


def test_without_the_driver_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # `import psycopg2` raises ImportError
    with pytest.raises(StudyError, match=r"pip install 'dltune\[postgres\]'") as error:
        open_storage("postgresql://me:s3cret@127.0.0.1:1/x")
    assert "s3cret" not in str(error.value)


def test_a_storage_lost_during_a_run_is_a_clear_error():
    import sqlalchemy.exc

    from dltune.storage import storage_lost

    cut = sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, Exception("server closed the connection unexpectedly\n\tThis probably")
    )
    error = storage_lost("postgresql://me:s3cret@db/x", cut)
    assert error is not None
    message = str(error)
    assert "'postgresql://me:***@db/x' failed during the run" in message
    assert "server closed the connection unexpectedly" in message
    assert "run the same command again" in message and "s3cret" not in message
    assert storage_lost("postgresql://me:s3cret@db/x", ValueError("not storage")) is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_server_that_never_answers_times_out(monkeypatch):
    """A port that accepts connections and then says nothing (a hung server, a firewall that
    swallows packets): the connect timeout ends the wait with a clear error."""
    need_driver()
    monkeypatch.setenv("DLTUNE_CONNECT_TIMEOUT", "2")  # 10 s by default
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; no one ever reads or writes
        port = silent.getsockname()[1]
        started = time.perf_counter()
        with pytest.raises(StudyError) as error:
            open_storage(f"postgresql://me:s3cret@127.0.0.1:{port}/x")
        seconds = time.perf_counter() - started
    message = str(error.value)
    assert 1.5 < seconds < 6, seconds
    assert "timeout expired" in message and "no answer within 2 s" in message
    assert f"127.0.0.1:{port}" in message and "s3cret" not in message


def test_a_bad_connect_timeout_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DLTUNE_CONNECT_TIMEOUT", "soon")
    with pytest.raises(StudyError, match="DLTUNE_CONNECT_TIMEOUT='soon'"):
        open_storage("postgresql://me:s3cret@127.0.0.1:1/x")


def test_nothing_listening_exits_2_at_once(tmp_path):
    need_driver()
    started = time.perf_counter()
    url = f"postgresql://me:s3cret@127.0.0.1:{free_port()}/x"
    run = dltune("run", "--storage", url, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert time.perf_counter() - started < QUICK
    assert "Connection refused" in run.stderr and "server runs" in run.stderr
    assert "Traceback" not in run.stderr and "s3cret" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


# ---- the journal file: a shared file system -----------------------------------------------


def test_a_study_on_a_journal_file_runs_and_resumes(blobs, tmp_path):
    url = f"journal:///{tmp_path / 'study.log'}"
    first = tune(SMALL, blobs, storage=url, trials=3, seed=0, schedule="none")
    assert first.trials_run == 3
    again = tune(SMALL, blobs, storage=url, trials=2, seed=0, schedule="none")
    trials = again.study.trials
    assert [t.number for t in trials] == list(range(5))
    assert all(t.state.is_finished() for t in trials)
    assert all(isinstance(t.system_attrs.get(HEARTBEAT_ATTR), float) for t in trials)
    assert again.best is not None and 0.9 < again.best["test"] <= 1.0
    # the other commands read it as they read a database
    for command in ("best", "trials", "studies"):
        shown = dltune(command, "--storage", url, "--json", cwd=tmp_path)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert str(again.best["trial"]) in shown.stdout or command == "studies"
        if command == "studies":
            assert '"trials": 5' in shown.stdout


def test_a_journal_trial_without_heartbeats_is_failed_later(tmp_path):
    import optuna

    storage = open_storage(str(tmp_path / "study.log"))  # a bare .log name is a journal
    assert isinstance(storage, optuna.storages.JournalStorage)
    study = optuna.create_study(storage=storage, study_name="s")
    dead, alive = study.ask(), study.ask()
    storage.set_trial_system_attr(dead._trial_id, HEARTBEAT_ATTR, time.time() - grace_period() - 5)
    storage.set_trial_system_attr(alive._trial_id, HEARTBEAT_ATTR, time.time())
    fail_stale_trials(study)
    states = {t.number: t.state for t in study.trials}
    assert states == {
        dead.number: optuna.trial.TrialState.FAIL,
        alive.number: optuna.trial.TrialState.RUNNING,
    }


def test_a_database_trial_killed_before_its_first_heartbeat_is_failed_later(tmp_path):
    import datetime
    import sqlite3

    import optuna

    db = tmp_path / "h.db"
    study = optuna.create_study(storage=open_storage(f"sqlite:///{db}"))
    dead = study.ask()  # created, then its process killed before it could beat
    old = datetime.datetime.now() - datetime.timedelta(seconds=grace_period() + 5)
    with sqlite3.connect(db) as connection:
        connection.execute(
            "UPDATE trials SET datetime_start = ? WHERE trial_id = ?",
            (old.isoformat(sep=" "), dead._trial_id),
        )
    young = study.ask()  # just created, no heartbeat yet: alive until proven otherwise
    beating = study.ask()
    study._storage.record_heartbeat(beating._trial_id)
    fail_stale_trials(study)
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states == {
        dead.number: optuna.trial.TrialState.FAIL,
        young.number: optuna.trial.TrialState.RUNNING,
        beating.number: optuna.trial.TrialState.RUNNING,
    }


def test_two_processes_share_one_journal_file(project):
    run_two_together(project, "journal:///shared.log", (2, 2))
    assert_shared_without_duplicates(f"journal:///{project / 'shared.log'}", 4)


# ---- PostgreSQL --------------------------------------------------------------------------


def _admin_url() -> str:
    url = os.environ.get("DLTUNE_TEST_POSTGRES_URL")
    why = None
    if not url:
        why = "DLTUNE_TEST_POSTGRES_URL is not set"
    else:
        try:
            import psycopg2

            psycopg2.connect(url, connect_timeout=5).close()
        except ImportError:
            why = "psycopg2 is not installed (pip install 'dltune[postgres]')"
        except Exception as exc:
            why = f"PostgreSQL at {display_url(url)} cannot be reached: {exc}"
    require_or_skip(why, "DLTUNE_REQUIRE_POSTGRES")
    assert url is not None
    return url


def _admin(url: str, *statements: str) -> None:
    import psycopg2

    connection = psycopg2.connect(url, connect_timeout=5)
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def _with_database(url: str, database: str, user: str | None = None, pw: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    made = make_url(url).set(database=database)
    if user is not None:
        made = made.set(username=user, password=pw)
    return made.render_as_string(hide_password=False)


@pytest.fixture
def postgres() -> Any:
    """A fresh database's URL (as the test role, its owner); dropped afterwards."""
    admin = _admin_url()
    name = f"dltune_t_{uuid.uuid4().hex[:10]}"
    _admin(admin, f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin, name)
    finally:
        _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_a_study_on_postgresql_runs_and_resumes(blobs, postgres):
    first = tune(SMALL, blobs, storage=postgres, trials=3, seed=0, schedule="none")
    assert first.trials_run == 3
    again = tune(SMALL, blobs, storage=postgres, trials=2, seed=0, schedule="none")
    trials = again.study.trials
    assert [t.number for t in trials] == list(range(5))
    assert all(t.state.is_finished() for t in trials)
    assert again.best is not None and 0.9 < again.best["test"] <= 1.0


@pytest.mark.postgres
def test_two_dltune_runs_share_one_postgresql_study(project, postgres):
    run_two_together(project, postgres, (3, 2))
    assert_shared_without_duplicates(postgres, 5)


@pytest.mark.postgres
def test_a_wrong_password_exits_2_quickly_with_the_fix(project, postgres):
    from sqlalchemy.engine import make_url

    wrong = make_url(postgres).set(password="not-the-password")
    started = time.perf_counter()
    run = dltune("run", "--storage", wrong.render_as_string(hide_password=False), cwd=project)
    assert time.perf_counter() - started < QUICK
    assert run.returncode == 2, run.stderr
    assert "password authentication failed" in run.stderr
    assert "check the user name and password" in run.stderr
    assert "Traceback" not in run.stderr and "not-the-password" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.postgres
def test_a_missing_database_is_a_clear_error(postgres):
    missing = _with_database(postgres, "dltune_no_such_db")
    with pytest.raises(StudyError) as error:
        open_storage(missing)
    message = str(error.value)
    assert "does not exist" in message and "createdb" in message
    assert "\n" not in message


@pytest.mark.postgres
def test_a_role_without_permissions_is_a_clear_error_at_once(postgres):
    from sqlalchemy.engine import make_url

    role = f"dltune_r_{uuid.uuid4().hex[:10]}"
    _admin(postgres, f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'")
    try:
        database = make_url(postgres).database
        assert database is not None
        url = _with_database(postgres, database, user=role, pw=f"pw-{role}")
        for tables in ("absent", "present"):  # Optuna's tables made by the owner, or not yet
            if tables == "present":
                open_storage(postgres)  # the owner creates them
            started = time.perf_counter()
            with pytest.raises(StudyError) as error:
                open_storage(url)
            assert time.perf_counter() - started < QUICK
            message = str(error.value)
            assert "permission denied" in message and "GRANT" in message, message
            assert f"pw-{role}" not in message and "\n" not in message
    finally:
        _admin(postgres, f"DROP ROLE {role}")
