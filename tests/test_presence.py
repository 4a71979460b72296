"""Who else is on a storage (storage.presence, storage.heartbeats): one lock per database file
whatever its URL says, "alone" judged when it is acted on (a run that started during another's
data load keeps its trials), each interrupted trial continued once by drivers that start
together, and a dead owner judged by its machine's boot and pid namespace, not by a host name.

Processes here are real (forked: tests/helpers.py's Forked, or multiprocessing's fork) and
waited on by what they write or signal, never by sleeping for a while."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dltune.storage import fail_stale_trials, open_storage, schema
from dltune.storage.heartbeats import this_process
from dltune.storage.presence import SUFFIX, lock_path, presence

from .helpers import SMALL_SPACE, Forked, dltune

WAIT = 240  # seconds: the most any process here is waited for (a loaded machine is slow)


def wait_until(done: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll for what another process writes; fail naming it after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


# ---- one database, one lock ----------------------------------------------------------------


@pytest.fixture
def spellings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """URLs of one SQLite file, x.db in the working folder, written every way a user may."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.db").touch()
    (tmp_path / "link.db").symlink_to(tmp_path / "x.db")
    (tmp_path / "sub").mkdir()
    return [
        "sqlite:///x.db",
        "sqlite:///x.db?timeout=30",
        f"sqlite:///{tmp_path / 'x.db'}",  # sqlite:////abs/x.db
        "sqlite:///./x.db",
        "sqlite:///sub/../x.db",
        "sqlite:///link.db",
        "sqlite+pysqlite:///x.db",
        f"sqlite:///file:{tmp_path / 'x.db'}?mode=rw&uri=true",
    ]


def test_every_spelling_of_one_database_names_one_lock(spellings, tmp_path):
    assert {lock_path(url) for url in spellings} == {str(tmp_path / "x.db") + SUFFIX}
    for other in (None, "sqlite://", "sqlite:///:memory:", "sqlite:///file:x.db",
                  "sqlite:///file::memory:?cache=shared&uri=true",
                  "journal:///x.db", "postgresql://u:p@127.0.0.1/x"):  # fmt: skip
        assert lock_path(other) is None, other


def _hold(url: str, inside: Any, release: Any) -> None:
    """A process on `url` past its turn (holding the shared lock) until `release` is set."""
    with presence(url) as held:
        with held.turn():
            pass
        inside.set()
        release.wait(WAIT)


def test_two_runs_on_one_database_file_see_one_lock(spellings):
    context = multiprocessing.get_context("fork")
    inside, release = context.Event(), context.Event()
    other = context.Process(target=_hold, args=(spellings[0], inside, release))
    other.start()
    try:
        assert inside.wait(WAIT)
        for url in spellings:  # however this run spells it, another is there
            with presence(url) as held, held.turn() as alone:
                assert not alone, url
    finally:
        release.set()
        other.join(WAIT)
    assert other.exitcode == 0
    for url in spellings:  # and once it has ended, each spelling finds itself alone
        with presence(url) as held, held.turn() as alone:
            assert alone, url


def _turn(url: str, trying: Any, inside: Any, release: Any, left: Any, before: Any) -> None:
    """Take a turn on `url`, noting `inside` and, once `release` is set, `left`; `before`:
    the (inside, left, overlapped) events of a turn begun earlier, or None."""
    trying.set()
    with presence(url) as held, held.turn():
        if before is not None and before[0].is_set() and not before[1].is_set():
            before[2].set()  # the earlier turn was still going on
        inside.set()
        release.wait(WAIT)
        left.set()


def test_turns_on_one_database_are_one_at_a_time(spellings):
    context = multiprocessing.get_context("fork")
    first_events = [context.Event() for _ in range(4)]  # trying, inside, release, left
    second_events = [context.Event() for _ in range(4)]
    overlapped = context.Event()
    first = context.Process(target=_turn, args=(spellings[0], *first_events, None))
    first.start()
    assert first_events[1].wait(WAIT)
    # The second (another spelling) waits for the first's turn to end; let in at once, it
    # would note the first inside and not yet left.
    earlier = (first_events[1], first_events[3], overlapped)
    second = context.Process(target=_turn, args=(spellings[5], *second_events, earlier))
    second.start()
    assert second_events[0].wait(WAIT)
    first_events[2].set()
    first.join(WAIT)
    second_events[2].set()
    second.join(WAIT)
    assert (first.exitcode, second.exitcode) == (0, 0)
    assert second_events[3].is_set() and not overlapped.is_set()


# ---- "alone" judged when it is used ---------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, blobs) -> Path:
    """A folder with the small space and the blobs as a .npz file, for `dltune run`."""
    (tmp_path / "small.yaml").write_text(SMALL_SPACE)
    np.savez(tmp_path / "blobs.npz", x=blobs.x_train, y=blobs.y_train)
    return tmp_path


# Quick runs: one process, every trial to its last epoch, validated on the holdout, the best
# trial chosen by its value alone and delivered alone.
RUN = ["run", "small.yaml", "--data", "blobs.npz", "--study", "shared", "--workers", "1",
       "--schedule", "none", "--cv", "holdout", "--choose", "max", "--ensemble", "off"]  # fmt: skip


def _held_at(gate: str | None, name: str) -> None:
    """In a forked run given the gate (a path prefix, by environment): write `gate.name` once,
    then wait for the test's `gate.go`."""
    if gate is None or os.path.exists(f"{gate}.{name}"):
        return
    Path(f"{gate}.{name}").touch()
    wait_until(lambda: os.path.exists(f"{gate}.go"), f"{gate}.go")


@pytest.fixture
def gates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs forked after this hold where their environment says: DLTUNE_TEST_HOLD_LOAD in
    their data load, DLTUNE_TEST_HOLD_TRAIN at their first epoch's report (a trial running)."""
    from dltune.study import resolve
    from dltune.study.lifecycle import TrialLifecycle

    load, report = resolve.resolve_data, TrialLifecycle.report

    def loading(settings: Any) -> Any:
        _held_at(os.environ.get("DLTUNE_TEST_HOLD_LOAD"), "loading")
        return load(settings)

    def reporting(self: Any, number: int, epoch: Any) -> bool:
        _held_at(os.environ.get("DLTUNE_TEST_HOLD_TRAIN"), "training")
        return report(self, number, epoch)

    monkeypatch.setattr(resolve, "resolve_data", loading)
    monkeypatch.setattr(TrialLifecycle, "report", reporting)


def _rows(db: Path) -> dict[int, tuple[str, dict[str, Any]]]:
    """number -> (state, user attributes), read with sqlite3 alone."""
    with sqlite3.connect(db, timeout=30) as connection:
        states = dict(connection.execute("SELECT number, state FROM trials").fetchall())
        attrs = connection.execute(
            "SELECT t.number, a.key, a.value_json FROM trials t "
            "JOIN trial_user_attributes a ON a.trial_id = t.trial_id"
        ).fetchall()
    rows: dict[int, tuple[str, dict[str, Any]]] = {n: (s, {}) for n, s in states.items()}
    for number, key, value in attrs:
        rows[number][1][key] = json.loads(value)
    return rows


@pytest.mark.slow
def test_a_run_that_starts_during_anothers_data_load_keeps_its_trials(project, gates):
    """A takes its lock and loads its data (held there by the test); B starts meanwhile and
    trains (held with its first trials running); A's data arrive: A is not alone, and fails
    none of B's trials. Every trial of both ends as it would have alone."""
    a_gate, b_gate = str(project / "a"), str(project / "b")
    url = "sqlite:///x.db"
    a = Forked(*RUN, "--storage", url, "--trials", "2", cwd=project,
               env={"DLTUNE_TEST_HOLD_LOAD": a_gate})  # fmt: skip
    b: Forked | None = None
    try:
        wait_until(lambda: os.path.exists(f"{a_gate}.loading"), "A loading its data")
        b = Forked(*RUN, "--storage", url, "--trials", "2", "--seed", "1", cwd=project,
                   env={"DLTUNE_TEST_HOLD_TRAIN": b_gate})  # fmt: skip
        wait_until(lambda: os.path.exists(f"{b_gate}.training"), "B training")
        running = [n for n, (state, _) in _rows(project / "x.db").items() if state == "RUNNING"]
        assert running  # B's, mid-epoch
        Path(f"{a_gate}.go").touch()
        ran_a = a.wait(WAIT)  # A opens the study, takes its turn, trains its own and ends
        assert ran_a.returncode == 0, ran_a.stdout + ran_a.stderr
        states = {n: state for n, (state, _) in _rows(project / "x.db").items()}
        assert all(states[n] == "RUNNING" for n in running), states  # B's, untouched
        Path(f"{b_gate}.go").touch()
        ran_b = b.wait(WAIT)
        assert ran_b.returncode == 0, ran_b.stdout + ran_b.stderr
    finally:
        for run in (a, b):
            if run is not None and run.alive():
                run.process.kill()
    rows = _rows(project / "x.db")
    assert len(rows) == 4
    assert all(state in ("COMPLETE", "PRUNED") for state, _ in rows.values()), rows
    owners = {attrs["owner"]["pid"] for _, attrs in rows.values()}
    assert owners == {a.pid, b.pid}


# ---- each interrupted trial continued once ----------------------------------------------------


def _interrupted_study(project: Path, url: str) -> list[int]:
    """A study `shared` at `url` with two trials left interrupted (their process killed:
    failed, marked interrupted, with their params and seed); their numbers."""
    import optuna

    first = dltune(*RUN, "--storage", url, "--trials", "2", cwd=project)
    assert first.returncode == 0, first.stdout + first.stderr
    study = optuna.load_study(study_name="shared", storage=open_storage(url))
    numbers = []
    for trial in study.get_trials(deepcopy=False)[:2]:
        numbers.append(len(study.get_trials(deepcopy=False)))
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={schema.STATE: "interrupted", schema.SEED: 1000 + trial.number},
            )
        )
    return numbers


def _continuations(study: Any, old: int) -> tuple[list[int], list[int]]:
    """The trials that continued interrupted trial `old`, and those dropped as second ones."""
    trained: list[int] = []
    dropped: list[int] = []
    for trial in study.get_trials(deepcopy=False):
        if schema.read_resumes(trial) != old:
            continue
        second = "second continuation" in str(trial.user_attrs.get(schema.ERROR, ""))
        (dropped if second else trained).append(trial.number)
    return trained, dropped


def test_a_second_continuation_of_one_trial_is_dropped_when_asked(project):
    """Two drivers that enqueued together where nothing takes turns (a journal, a database
    server): the first continuation enqueued is the one; the other is dropped when asked."""
    import optuna

    url = f"sqlite:///{project / 'x.db'}"
    old = _interrupted_study(project, url)
    study = optuna.load_study(study_name="shared", storage=open_storage(url))
    for number in old:  # as two drivers racing would have: each enqueued twice
        trial = study.get_trials(deepcopy=False)[number]
        schema.enqueue_resume(study, trial, seed=1000 + trial.number)
        schema.enqueue_resume(study, trial, seed=1000 + trial.number)
    before = len(study.get_trials(deepcopy=False))
    again = dltune(*RUN, "--storage", url, "--trials", "3", cwd=project)
    assert again.returncode == 0, again.stdout + again.stderr
    trials = study.get_trials(deepcopy=False)
    for number in old:
        trained, dropped = _continuations(study, number)
        assert len(trained) == 1 and len(dropped) == 1, (trained, dropped)
        assert trained[0] < dropped[0]
        assert trials[trained[0]].state in (optuna.trial.TrialState.COMPLETE,
                                            optuna.trial.TrialState.PRUNED)  # fmt: skip
        assert trials[dropped[0]].state == optuna.trial.TrialState.FAIL
    # the run's three trials: the two continuations and a new one (the dropped not counted)
    assert len(trials) == before + 1
    assert not [t for t in trials if t.state == optuna.trial.TrialState.WAITING]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_drivers_starting_together_continue_each_trial_once(project, kind, monkeypatch):
    """Two `dltune run` drivers on a study with interrupted trials, started together. On a
    journal (no turns) they are made to race: each reads the trials before either enqueues.
    Each interrupted trial is trained on by one continuation: on SQLite, the turns enqueue it
    once; on the journal the second enqueued is dropped when asked."""
    import optuna

    from dltune.study import checkpointing, roles

    url = f"sqlite:///{project / 'x.db'}" if kind == "sqlite" else f"journal:///{project}/x.log"
    old = _interrupted_study(project, url)
    real = checkpointing.enqueue_interrupted
    race = project / "race"
    race.mkdir()

    def racing(study: Any) -> list[int]:  # in each forked driver, on the journal
        seen = study.get_trials(deepcopy=False)
        (race / str(os.getpid())).touch()
        wait_until(lambda: len(list(race.iterdir())) >= 2, "the other driver ready to enqueue")
        study.get_trials = lambda *args, **kwargs: seen  # what it read before the other wrote
        try:
            return real(study)
        finally:
            del study.get_trials

    if kind == "journal":
        monkeypatch.setattr(roles, "enqueue_interrupted", racing)
    runs = [Forked(*RUN, "--storage", url, "--trials", "3", "--seed", str(i), cwd=project)
            for i in range(2)]  # fmt: skip
    try:
        for run in runs:
            ran = run.wait(WAIT)
            assert ran.returncode == 0, ran.stdout + ran.stderr
    finally:
        for run in runs:
            if run.alive():
                run.process.kill()
    study = optuna.load_study(study_name="shared", storage=open_storage(url))
    for number in old:
        trained, dropped = _continuations(study, number)
        assert len(trained) == 1, (number, trained, dropped)
        assert len(dropped) == (1 if kind == "journal" else 0), (number, trained, dropped)
    assert all(t.state != optuna.trial.TrialState.WAITING for t in study.trials)


# ---- a dead owner, judged on its own machine --------------------------------------------------


def test_an_owner_of_another_boot_or_pid_namespace_is_not_judged_by_its_pid(tmp_path):
    import optuna

    here = this_process()
    assert here["pid"] == os.getpid() and here["host"] == socket.gethostname()
    assert {"boot", "pidns"} <= set(here)
    if here["boot"] is None or here["pidns"] is None:
        pytest.skip("no /proc/sys/kernel/random/boot_id or /proc/self/ns/pid here")
    ended = subprocess.Popen(["true"])
    ended.wait()  # its pid is free now
    dead = {**here, "pid": ended.pid, "started": None}
    owners = {
        "dead here": dead,
        "dead, before boot and pidns were kept": {
            k: v for k, v in dead.items() if k not in ("boot", "pidns")
        },
        "another boot": {**dead, "boot": "0" * 8 + "-0000-0000-0000-" + "0" * 12},
        "another pid namespace": {**dead, "pidns": "pid:[1]"},
        "alive here": here,
    }
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'z.db'}")
    trials = {}
    for name, owner in owners.items():
        trials[name] = study.ask()
        schema.write_owner(trials[name], owner)
    fail_stale_trials(study)  # long before any heartbeat grace
    states = {name: study.trials[t.number].state.name for name, t in trials.items()}
    assert states == {
        "dead here": "FAIL",
        "dead, before boot and pidns were kept": "FAIL",
        "another boot": "RUNNING",  # left to the heartbeats
        "another pid namespace": "RUNNING",
        "alive here": "RUNNING",
    }
