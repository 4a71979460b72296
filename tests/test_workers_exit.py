"""Every wait on the way out of a study with worker processes is bounded: a worker that
reported but does not exit is stopped; one that never reports is stopped after its grace once
the run is interrupted; Ctrl-C while the main process waits for its workers interrupts the run
(and reaches the workers) instead of waiting on them. The workers here are plain functions
(study.workers' WorkerTarget) that say what they do through marker files: the test waits on
those, never on a sleep."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from dltune.study import workers
from dltune.study.arrangement import Arrangement
from dltune.study.choice import ChoiceRule
from dltune.study.plan import make_plan
from dltune.study.progress import ProgressListener
from dltune.study.settings import TuneSettings
from dltune.study.workers import LocalWorkers, WorkerSummary

MARKER = "DLTUNE_TEST_MARKER"


def _mark(name: str) -> None:
    Path(os.environ[MARKER], name).write_text("")


def reports_then_lingers(plan, index, listener, stop) -> WorkerSummary:
    """Reports, but a thread that never ends keeps its process from exiting."""
    threading.Thread(target=threading.Event().wait, daemon=False).start()
    _mark("reported")
    return WorkerSummary(index, trials=1)


def never_reports(plan, index, listener, stop) -> WorkerSummary:
    """Ignores every request to stop and never reports."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _mark("started")
    threading.Event().wait()
    raise AssertionError("unreachable")


def waits_for_ctrl_c(plan, index, listener, stop) -> WorkerSummary:
    """Trains until Ctrl-C reaches it (its KeyboardInterrupt: reported as interrupted)."""
    _mark("started")
    threading.Event().wait()
    raise AssertionError("unreachable")


def _wait_for(path: Path, within: float = 60.0) -> None:
    ends = time.monotonic() + within
    while not path.exists():
        assert time.monotonic() < ends, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.fixture
def markers(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(MARKER, str(tmp_path))
    monkeypatch.setattr(workers, "EXIT_GRACE_S", 0.5)
    monkeypatch.setattr(workers, "STOP_GRACE_S", 0.5)
    return tmp_path


def _workers(target) -> LocalWorkers:
    two = Arrangement(workers=2, engine="sequential", threads=1)
    plan = make_plan(TuneSettings(), two, ChoiceRule(), continued=False, began=time.time())
    helpers = LocalWorkers(plan, target, ProgressListener())
    helpers.start()
    return helpers


def test_a_worker_that_reported_but_does_not_exit_is_stopped(markers):
    helpers = _workers(reports_then_lingers)
    _wait_for(markers / "reported")
    started = time.monotonic()
    (summary,) = helpers.join()
    assert summary.trials == 1
    assert time.monotonic() - started < 15  # its exit grace, then terminate
    assert not helpers.processes[0].is_alive()


def test_a_worker_that_never_reports_is_stopped_once_the_run_is_interrupted(markers):
    helpers = _workers(never_reports)
    _wait_for(markers / "started")
    started = time.monotonic()
    (summary,) = helpers.join(interrupted=True)
    assert summary.interrupted and not helpers.processes[0].is_alive()
    assert time.monotonic() - started < 20  # its grace, terminate (ignored), then kill


def test_ctrl_c_while_waiting_for_the_workers_interrupts_the_run(markers):
    helpers = _workers(waits_for_ctrl_c)
    _wait_for(markers / "started")
    # Ctrl-C reaches this process (the main thread) in its first wait in join
    wait, calls = helpers._changed.wait, []

    def interrupted_once(timeout: float | None = None) -> bool:
        calls.append(timeout)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return wait(timeout)

    helpers._changed.wait = interrupted_once  # type: ignore[method-assign]
    (summary,) = helpers.join()
    assert helpers.interrupted  # the run counts as interrupted ...
    assert summary.interrupted  # ... and the worker got Ctrl-C too, and reported
    assert not helpers.processes[0].is_alive()
